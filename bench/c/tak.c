/* Takeuchi's tak(x, y, z), the same computation as bench_tak.xt.
 * Usage: tak X Y Z REPS.  Runs tak REPS times, timing each run inside the process
 * in CPU time (clock_gettime(CLOCK_PROCESS_CPUTIME_ID) around the work, so process
 * start-up and other processes' load are not counted), and prints
 * "RESULT MEDIAN_NS MIN_NS": the median and the fastest run's CPU nanoseconds. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long tak(long x, long y, long z) {
    return !(y < x) ? z : tak(tak(x - 1, y, z), tak(y - 1, z, x), tak(z - 1, x, y));
}

static long long cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: tak X Y Z REPS\n"); return 2; }
    long x = atol(argv[1]), y = atol(argv[2]), z = atol(argv[3]);
    int reps = atoi(argv[4]);
    if (reps < 1 || reps > 100000) { fprintf(stderr, "bad REPS\n"); return 2; }
    long long *times = malloc(sizeof(long long) * reps);
    volatile long result = 0;   /* volatile: every run must really happen */
    for (int i = 0; i < reps; i++) {
        long long t0 = cpu_ns();
        result = tak(x, y, z);
        times[i] = cpu_ns() - t0;
    }
    qsort(times, reps, sizeof(long long), cmp);
    printf("%ld %lld %lld\n", (long)result, times[reps / 2], times[0]);
    free(times);
    return 0;
}
