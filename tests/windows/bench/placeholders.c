/* Can a lent window be taken back on Windows without leaving its address free (lend.rs)?
 * Windows 10 1803+ does it with placeholders: reserve a placeholder (VirtualAlloc2), map the
 * section into it (MapViewOfFile3, MEM_REPLACE_PLACEHOLDER), and to take it back unmap while
 * keeping the placeholder (UnmapViewOfFile2, MEM_PRESERVE_PLACEHOLDER) and put private zero
 * pages there (VirtualAlloc2, MEM_REPLACE_PLACEHOLDER). Prints what works; exit 0 when all
 * steps do. Calls are looked up at run time (kernelbase.dll).
 *
 *   placeholders */
#include "common.h"

#define P_MEM_RESERVE_PLACEHOLDER 0x00040000
#define P_MEM_REPLACE_PLACEHOLDER 0x00004000
#define P_MEM_PRESERVE_PLACEHOLDER 0x00000002
typedef PVOID(WINAPI* VirtualAlloc2_t)(HANDLE, PVOID, SIZE_T, ULONG, ULONG, void*, ULONG);
typedef PVOID(WINAPI* MapViewOfFile3_t)(HANDLE, HANDLE, PVOID, ULONG64, SIZE_T, ULONG, ULONG, void*, ULONG);
typedef BOOL(WINAPI* UnmapViewOfFile2_t)(HANDLE, PVOID, ULONG);

int main(void) {
    HMODULE kb = GetModuleHandleA("kernelbase.dll");
    VirtualAlloc2_t va2 = kb ? (VirtualAlloc2_t)(void*)GetProcAddress(kb, "VirtualAlloc2") : NULL;
    MapViewOfFile3_t mv3 = kb ? (MapViewOfFile3_t)(void*)GetProcAddress(kb, "MapViewOfFile3") : NULL;
    UnmapViewOfFile2_t uv2 = kb ? (UnmapViewOfFile2_t)(void*)GetProcAddress(kb, "UnmapViewOfFile2") : NULL;
    printf("VirtualAlloc2 %s, MapViewOfFile3 %s, UnmapViewOfFile2 %s\n", va2 ? "found" : "MISSING",
           mv3 ? "found" : "MISSING", uv2 ? "found" : "MISSING");
    if (!va2 || !mv3 || !uv2) return 1;
    const SIZE_T len = 65536;
    HANDLE sec = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, (DWORD)len, NULL);
    char* base = MapViewOfFile(sec, FILE_MAP_ALL_ACCESS, 0, 0, 0);
    if (!sec || !base) die("section");
    base[0] = 'S';
    HANDLE proc = GetCurrentProcess();
    char* ph = va2(proc, NULL, len, MEM_RESERVE | P_MEM_RESERVE_PLACEHOLDER, PAGE_NOACCESS, NULL, 0);
    printf("1. reserve a placeholder: %s (error %lu)\n", ph ? "ok" : "FAILED", ph ? 0 : GetLastError());
    if (!ph) return 1;
    char* win = mv3(sec, proc, ph, 0, len, P_MEM_REPLACE_PLACEHOLDER, PAGE_READWRITE, NULL, 0);
    int shared = win == ph && win[0] == 'S';
    if (win) win[1] = 'W';
    printf("2. map the section into it: %s (error %lu)\n", shared && base[1] == 'W' ? "ok" : "FAILED",
           win ? 0 : GetLastError());
    BOOL un = uv2(proc, ph, P_MEM_PRESERVE_PLACEHOLDER);
    MEMORY_BASIC_INFORMATION mbi;
    VirtualQuery(ph, &mbi, sizeof mbi);
    printf("3. unmap, keeping the placeholder: %s (state %#lx: %s)\n", un ? "ok" : "FAILED",
           mbi.State, mbi.State == MEM_RESERVE ? "reserved, nothing can land there" : "NOT reserved");
    char* zero = va2(proc, ph, len, MEM_RESERVE | MEM_COMMIT | P_MEM_REPLACE_PLACEHOLDER, PAGE_READWRITE, NULL, 0);
    int ok4 = zero == ph && zero[0] == 0;
    if (zero) zero[0] = 'Z';
    printf("4. private zero pages in its place: %s; the frame unchanged: %s\n", ok4 ? "ok" : "FAILED",
           base[0] == 'S' ? "yes" : "NO");
    return un && shared && ok4 && mbi.State == MEM_RESERVE && base[0] == 'S' ? 0 : 1;
}
