"""The version of hbench, where every stage may read it (`hbench.__version__` is this one).

A prepared dataset's manifest records it when the installed distribution's metadata is missing (a source
checkout put on the path without installing it); otherwise it records the installed version.
"""

__version__ = "0.1.0"
