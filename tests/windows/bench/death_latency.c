/* How long Wine takes to report a process's death to another process through an abandoned
 * mutex: a child owns a named mutex on a keeper thread (as a role's keeper would) and sleeps;
 * the parent waits in WaitForMultipleObjects on {that mutex, an event} from a watcher thread,
 * calls TerminateProcess on the child, and the watcher times WAIT_ABANDONED_0. Also times
 * the child's process handle becoming signalled. A new child each round. Then 8 waiters on
 * one mutex whose owner is killed: one sees WAIT_ABANDONED, the others WAIT_OBJECT_0.
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

/* Several waiters on one role mutex (readers waiting on the producer's): the first gets
 * WAIT_ABANDONED and releases it, each next one gets WAIT_OBJECT_0 and releases it. */
#define WAITERS 8
static HANDLE many_mutex[WAITERS];
static volatile double many_woke[WAITERS];
static volatile DWORD many_result[WAITERS];
static volatile LONG many_armed;

static DWORD WINAPI many_watcher(void* arg) {
    int i = (int)(INT_PTR)arg;
    HANDLE wait[2] = {many_mutex[i], nothing};
    InterlockedIncrement(&many_armed);
    many_result[i] = WaitForMultipleObjects(2, wait, FALSE, 10000);
    many_woke[i] = qpc_us();
    if (many_result[i] == WAIT_ABANDONED_0 || many_result[i] == WAIT_OBJECT_0) ReleaseMutex(many_mutex[i]);
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

    char name[64], args[96];
    snprintf(name, sizeof name, "shmframes-bench-death-%lu-many", GetCurrentProcessId());
    snprintf(args, sizeof args, "child %s", name);
    HANDLE child = spawn_self(args);
    if (WaitForSingleObject(ready, 10000) != WAIT_OBJECT_0) die("wait for the child");
    HANDLE threads[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
        many_mutex[i] = OpenMutexA(SYNCHRONIZE | MUTEX_MODIFY_STATE, FALSE, name);
        threads[i] = CreateThread(NULL, 0, many_watcher, (void*)(INT_PTR)i, 0, NULL);
    }
    while (many_armed < WAITERS) Sleep(1);
    Sleep(20);
    double t0 = qpc_us(), last = 0;
    TerminateProcess(child, 9);
    WaitForMultipleObjects(WAITERS, threads, TRUE, 10000);
    int n_abandoned = 0, n_free = 0;
    for (int i = 0; i < WAITERS; i++) {
        n_abandoned += many_result[i] == WAIT_ABANDONED_0;
        n_free += many_result[i] == WAIT_OBJECT_0;
        if (many_woke[i] - t0 > last) last = many_woke[i] - t0;
    }
    printf("%d waiters on one killed owner's mutex: %d WAIT_ABANDONED, %d WAIT_OBJECT_0, all woken %.0f us after TerminateProcess\n",
           WAITERS, n_abandoned, n_free, last);
    return abandoned == rounds && n_abandoned == 1 && n_free == WAITERS - 1 ? 0 : 1;
}
