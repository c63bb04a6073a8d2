"""The CUDA backend (``"cuda"``): numba-cuda kernels generated from the same equations.

* :mod:`.codegen`: the kernels' source; :mod:`.model`: :class:`~.model.CudaModel`, the
  :class:`~symprop.kernels.model.CompiledModel` whose kernels run on an NVIDIA GPU.
"""
