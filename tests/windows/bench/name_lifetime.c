/* What keeps a mapping's *name* alive: a creator process makes the mapping, a reader maps a
 * view of it and either keeps or closes its handle, the creator is killed, and then the name
 * is looked up again (OpenFileMappingA) and created again (CreateFileMappingA: fresh, or
 * ERROR_ALREADY_EXISTS, i.e. the dead creator's mapping). The old view stays readable in
 * every case. This decides how a restarted producer gets its name back on Windows.
 *
 *   name_lifetime       (prints one line per case; exit 0) */
#include "common.h"

static void creator(const char* name) {
    HANDLE m = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, 4096, name);
    volatile LONG* v = MapViewOfFile(m, FILE_MAP_ALL_ACCESS, 0, 0, 0);
    HANDLE ready = OpenEventA(EVENT_MODIFY_STATE, FALSE, "shmframes-bench-name-ready");
    if (!m || !v || !ready) die("creator");
    *v = 42;
    SetEvent(ready);
    Sleep(INFINITE);
}

static void trial(int keep_handle) {
    char name[64], args[96];
    snprintf(name, sizeof name, "shmframes-bench-name-%lu-%d", GetCurrentProcessId(), keep_handle);
    snprintf(args, sizeof args, "child %s", name);
    HANDLE ready = CreateEventA(NULL, FALSE, FALSE, "shmframes-bench-name-ready");
    HANDLE child = spawn_self(args);
    if (WaitForSingleObject(ready, 10000) != WAIT_OBJECT_0) die("wait for the creator");
    HANDLE h = OpenFileMappingA(FILE_MAP_ALL_ACCESS, FALSE, name);
    volatile LONG* view = h ? MapViewOfFile(h, FILE_MAP_ALL_ACCESS, 0, 0, 0) : NULL;
    if (!view) die("open and map");
    if (!keep_handle) CloseHandle(h);
    TerminateProcess(child, 9);
    WaitForSingleObject(child, 10000);
    Sleep(50);
    HANDLE again = OpenFileMappingA(FILE_MAP_ALL_ACCESS, FALSE, name);
    DWORD open_err = again ? 0 : GetLastError();
    if (again) CloseHandle(again);
    HANDLE fresh = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, 4096, name);
    DWORD create_err = GetLastError();
    volatile LONG* fv = fresh ? MapViewOfFile(fresh, FILE_MAP_ALL_ACCESS, 0, 0, 0) : NULL;
    printf("reader %s its handle, creator killed: OpenFileMapping %s; CreateFileMapping %s"
           " (sees %ld); old view still reads %ld\n",
           keep_handle ? "keeps" : "closed", again ? "finds the old mapping" : "fails",
           create_err == ERROR_ALREADY_EXISTS ? "returns the OLD mapping (ERROR_ALREADY_EXISTS)"
                                              : "makes a fresh one",
           fv ? *fv : -1L, *view);
    (void)open_err;
    if (fv) UnmapViewOfFile((void*)fv);
    if (fresh) CloseHandle(fresh);
    UnmapViewOfFile((void*)view);
    if (keep_handle) CloseHandle(h);
    CloseHandle(child);
    CloseHandle(ready);
}

int main(int argc, char** argv) {
    if (argc > 2 && strcmp(argv[1], "child") == 0) creator(argv[2]);
    trial(1);
    trial(0);
    return 0;
}
