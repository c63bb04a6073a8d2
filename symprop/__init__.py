"""The ``symprop`` command-line tool: a thin layer over :mod:`derive`, :mod:`kernels` and :mod:`reports`."""
