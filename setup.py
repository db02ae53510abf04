"""Build shim: all metadata and pins live in setup.cfg."""
import setuptools

setuptools.setup()
