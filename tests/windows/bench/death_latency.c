/* How long Wine takes to report a process's death to another process through an abandoned
 * mutex: a child owns a named mutex on a keeper thread (as a role's keeper would) and sleeps;
 * the parent waits in WaitForMultipleObjects on {that mutex, an event} from a watcher thread,
 * calls TerminateProcess on the child, and the watcher times WAIT_ABANDONED_0. Also times
 * the child's process handle becoming signalled. A new child each round.
 *
 *   death_latency [ROUNDS=200] */
#include "common.h"

static HANDLE mutex, nothing, armed;
static volatile double woke, proc_signalled;
static volatile DWORD result;

static DWORD WINAPI keeper(void* name) {
    HANDLE m = CreateMutexA(NULL, FALSE, (const char*)name);
    if (!m || WaitForSingleObject(m, 0) != WAIT_OBJECT_0) die("keeper: take the mutex");
    HANDLE ready = OpenEventA(EVENT_MODIFY_STATE, FALSE, "shmframes-bench-death-ready");
    if (!ready) die("keeper: open the ready event");
    SetEvent(ready);
    Sleep(INFINITE);
    return 0;
}

static DWORD WINAPI watcher(void* unused) {
    HANDLE wait[2] = {mutex, nothing};
    (void)unused;
    SetEvent(armed);
    result = WaitForMultipleObjects(2, wait, FALSE, 10000);
    woke = qpc_us();
    if (result == WAIT_ABANDONED_0 || result == WAIT_OBJECT_0) ReleaseMutex(mutex);
    return 0;
}

int main(int argc, char** argv) {
    if (argc > 2 && strcmp(argv[1], "child") == 0) {
        CreateThread(NULL, 0, keeper, argv[2], 0, NULL);
        Sleep(INFINITE);
    }
    int rounds = atoi(argc > 1 ? argv[1] : "200");
    double* lat = malloc(sizeof(double) * rounds);
    double* plat = malloc(sizeof(double) * rounds);
    double* kill_call = malloc(sizeof(double) * rounds);
    HANDLE ready = CreateEventA(NULL, FALSE, FALSE, "shmframes-bench-death-ready");
    nothing = CreateEventA(NULL, TRUE, FALSE, NULL);
    armed = CreateEventA(NULL, FALSE, FALSE, NULL);
    int abandoned = 0;
    for (int i = 0; i < rounds; i++) {
        char name[64], args[96];
        snprintf(name, sizeof name, "shmframes-bench-death-%lu-%d", GetCurrentProcessId(), i);
        snprintf(args, sizeof args, "child %s", name);
        HANDLE child = spawn_self(args);
        if (WaitForSingleObject(ready, 10000) != WAIT_OBJECT_0) die("wait for the child");
        mutex = OpenMutexA(SYNCHRONIZE | MUTEX_MODIFY_STATE, FALSE, name);
        if (!mutex) die("OpenMutex");
        HANDLE w = CreateThread(NULL, 0, watcher, NULL, 0, NULL);
        WaitForSingleObject(armed, INFINITE);
        Sleep(5); /* the watcher is asleep in the kernel */
        double t0 = qpc_us();
        TerminateProcess(child, 9);
        kill_call[i] = qpc_us() - t0;
        WaitForSingleObject(child, 10000);
        plat[i] = qpc_us() - t0;
        WaitForSingleObject(w, 10000);
        lat[i] = woke - t0;
        abandoned += result == WAIT_ABANDONED_0;
        CloseHandle(w);
        CloseHandle(mutex);
        CloseHandle(child);
    }
    report("TerminateProcess -> WAIT_ABANDONED in a waiter", lat, rounds);
    report("TerminateProcess -> the process handle signalled", plat, rounds);
    report("TerminateProcess call itself", kill_call, rounds);
    printf("WAIT_ABANDONED_0 in %d of %d rounds\n", abandoned, rounds);
    return abandoned == rounds ? 0 : 1;
}
