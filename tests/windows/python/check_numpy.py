"""Proves the embeddable CPython under Wine can do what the Windows Python tests will need:
import numpy and compute, and reach the Win32 API through ctypes (a named file mapping seen
through numpy, as the port's reader will hand frames out). Prints one line per check; exit 0
when all pass. Run by tests/windows/run.sh as `python.exe check_numpy.py`."""
import ctypes
import sys

import numpy as np

a = np.arange(320 * 240 * 3, dtype=np.uint32).reshape(240, 320, 3)
assert int(a.sum()) == (320 * 240 * 3) * (320 * 240 * 3 - 1) // 2
m = (a % 251).astype(np.uint8)
assert m.shape == (240, 320, 3) and m[10, 10].tolist() == [(10 * 960 + 30 + i) % 251 for i in range(3)]
print(f"python {sys.version.split()[0]} on {sys.platform}, numpy {np.__version__}: computes ok")

k32 = ctypes.WinDLL("kernel32", use_last_error=True)
k32.CreateFileMappingW.restype = ctypes.c_void_p
k32.CreateFileMappingW.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32,
                                   ctypes.c_uint32, ctypes.c_uint32, ctypes.c_wchar_p]
k32.MapViewOfFile.restype = ctypes.c_void_p
k32.MapViewOfFile.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32,
                              ctypes.c_uint32, ctypes.c_size_t]
k32.UnmapViewOfFile.argtypes = [ctypes.c_void_p]
k32.CloseHandle.argtypes = [ctypes.c_void_p]
INVALID_HANDLE_VALUE = ctypes.c_void_p(-1).value
h = k32.CreateFileMappingW(INVALID_HANDLE_VALUE, None, 0x04, 0, 65536, "shmframes-pycheck")
assert h, ctypes.get_last_error()
view = k32.MapViewOfFile(h, 0x000F001F, 0, 0, 65536)
assert view, ctypes.get_last_error()
frame = np.ctypeslib.as_array((ctypes.c_uint8 * 65536).from_address(view))
frame[:] = 7
assert int(frame.sum()) == 7 * 65536
del frame
k32.UnmapViewOfFile(view)
k32.CloseHandle(h)
print("ctypes CreateFileMappingW + numpy view of the mapping: ok")
