/* Shared by the Wine measurements (wake_latency.c, death_latency.c, name_lifetime.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

static inline double qpc_us(void) {
    static LARGE_INTEGER f;
    LARGE_INTEGER c;
    if (!f.QuadPart) QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (double)c.QuadPart * 1e6 / (double)f.QuadPart;
}

static inline int cmp_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return x < y ? -1 : x > y;
}

/* Prints p50, p99 and max of n samples (microseconds), sorting them. */
static inline void report(const char* what, double* us, int n) {
    qsort(us, n, sizeof *us, cmp_double);
    printf("%-58s n=%d p50=%.0f us p99=%.0f us max=%.0f us\n", what, n, us[n / 2],
           us[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1], us[n - 1]);
}

static inline void die(const char* what) {
    fprintf(stderr, "%s failed: error %lu\n", what, GetLastError());
    exit(1);
}

/* Starts this same executable with `args` (a command line tail); returns its process. */
static inline HANDLE spawn_self(const char* args) {
    char exe[MAX_PATH], cmd[2 * MAX_PATH];
    STARTUPINFOA si;
    PROCESS_INFORMATION pi;
    GetModuleFileNameA(NULL, exe, MAX_PATH);
    snprintf(cmd, sizeof cmd, "\"%s\" %s", exe, args);
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    if (!CreateProcessA(exe, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi)) die("CreateProcess");
    CloseHandle(pi.hThread);
    return pi.hProcess;
}
