// SPDX-License-Identifier: GPL-2.0-only
/*
 * tsc_khz: print the host's TSC frequency in kHz (median of 5 windows of
 * 40 ms against CLOCK_MONOTONIC_RAW).  Runs on the host: under TCG the
 * guest's RDTSC reads the host's TSC, and a microvm guest, which has no
 * HPET or PM timer to calibrate against, is told this value with
 * tsc_early_khz= (harness/qemu.py).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <x86intrin.h>

static int64_t ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(void)
{
	struct timespec win = { 0, 40 * 1000 * 1000 };
	double khz[5];
	int i;

	for (i = 0; i < 5; i++) {
		int64_t t0 = ns();
		uint64_t c0 = __rdtsc();
		int64_t t1;
		uint64_t c1;

		nanosleep(&win, NULL);
		t1 = ns();
		c1 = __rdtsc();
		khz[i] = (double)(c1 - c0) * 1e6 / (double)(t1 - t0);
	}
	qsort(khz, 5, sizeof(khz[0]), cmp);
	printf("%.0f\n", khz[2]);
	return 0;
}
