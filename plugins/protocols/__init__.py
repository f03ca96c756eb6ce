"""Built-in evaluation protocols (``genbench list protocols``)."""
