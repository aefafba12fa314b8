/* A stand-in for Windows' bcryptprimitives.dll, which Wine 8 lacks.
 *
 * Rust's std (1.78+) imports ProcessPrng from it to seed HashMap keys; without the DLL every
 * Rust executable fails to start under Wine 8. This exports ProcessPrng and fills the buffer
 * with RtlGenRandom (advapi32's SystemFunction036), which Wine has. Built with mingw by
 * tests/windows/setup.sh and placed beside the test executables. Test use only. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG len); /* RtlGenRandom */

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!SystemFunction036(data, n)) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE; /* the real ProcessPrng never fails */
}
