"""The GAN family: ``gan`` (MLP, Goodfellow et al. 2014), ``dcgan`` (Radford et al. 2016)
and ``wgan-gp`` (Gulrajani et al. 2017), with the stabilisers of the literature as options
each of them takes (see :mod:`.stabilisers` and :mod:`.base`)."""

from genbench import hookimpl

from .dcgan import DCGAN
from .gan import GAN
from .wgan_gp import WGANGP


@hookimpl
def register_models(register):
    register("gan", GAN)
    register("dcgan", DCGAN)
    register("wgan-gp", WGANGP)
