/* How long Wine takes to wake a thread of another process through a named auto-reset event:
 * SetEvent in one process -> WaitForMultipleObjects returning in the other, the wait the port
 * will use (data event + the peer's role mutex + a cancel event). One-way latency, timed with
 * QueryPerformanceCounter (one clock for all processes): the waker stamps the time in a
 * shared mapping just before SetEvent, the sleeper reads the clock as soon as it wakes.
 * Between rounds the waker pauses 2 ms so the sleeper is really asleep in the kernel. Also
 * times a SetEvent call alone.
 *
 *   wake_latency [ROUNDS=200]      (starts its own peer process) */
#include "common.h"

struct shared { volatile double stamp; volatile double lat[100000]; };

int main(int argc, char** argv) {
    int child = argc > 1 && strcmp(argv[1], "child") == 0;
    int rounds = atoi(argc > 2 ? argv[2] : argc > 1 && !child ? argv[1] : "200");
    HANDLE map = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0,
                                    sizeof(struct shared), "shmframes-bench-wake");
    if (!map) die("CreateFileMapping");
    struct shared* s = MapViewOfFile(map, FILE_MAP_ALL_ACCESS, 0, 0, 0);
    HANDLE data = CreateEventA(NULL, FALSE, FALSE, "shmframes-bench-wake-data");
    HANDLE done = CreateEventA(NULL, FALSE, FALSE, "shmframes-bench-wake-done");
    HANDLE role = CreateMutexA(NULL, FALSE, "shmframes-bench-wake-role");
    HANDLE cancel = CreateEventA(NULL, TRUE, FALSE, NULL);
    if (!s || !data || !done || !role || !cancel) die("setup");
    if (child) {
        HANDLE wait[3] = {data, role, cancel};
        for (int i = 0; i < rounds; i++) {
            DWORD r = WaitForMultipleObjects(3, wait, FALSE, 10000);
            double now = qpc_us();
            if (r != WAIT_OBJECT_0) { fprintf(stderr, "child: wait returned %lu\n", r); return 1; }
            s->lat[i] = now - s->stamp;
            SetEvent(done);
        }
        return 0;
    }
    /* The parent owns the role mutex (as the producer's keeper would) and wakes the child. */
    WaitForSingleObject(role, 0);
    char args[32];
    snprintf(args, sizeof args, "child %d", rounds);
    HANDLE peer = spawn_self(args);
    Sleep(300); /* the child starts and sleeps */
    double* lat = malloc(sizeof(double) * rounds);
    double* rtt = malloc(sizeof(double) * rounds);
    for (int i = 0; i < rounds; i++) {
        Sleep(2);
        double t0 = qpc_us();
        s->stamp = t0;
        SetEvent(data);
        if (WaitForSingleObject(done, 10000) != WAIT_OBJECT_0) die("wait for the child");
        rtt[i] = qpc_us() - t0;
        lat[i] = s->lat[i];
    }
    WaitForSingleObject(peer, 10000);
    /* What a waker pays per SetEvent with nobody asleep (a producer waking 32 readers pays it
     * 32 times): Wine sends every call to the wineserver. */
    double* set = malloc(sizeof(double) * rounds);
    HANDLE idle = CreateEventA(NULL, FALSE, FALSE, NULL);
    for (int i = 0; i < rounds; i++) {
        double t0 = qpc_us();
        SetEvent(idle);
        set[i] = qpc_us() - t0;
    }
    report("SetEvent call, nobody waiting", set, rounds);
    report("SetEvent -> other process's WaitForMultipleObjects(3)", lat, rounds);
    report("round trip (SetEvent, wake, SetEvent back, wake)", rtt, rounds);
    return 0;
}
