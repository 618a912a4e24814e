// SPDX-License-Identifier: GPL-2.0-only
/*
 * memhog - guest-side test helper for the vballoon VM tests.
 *
 * Allocates N MiB of anonymous memory, writes every page with a
 * pattern derived from its index, reads every page back to verify the
 * pattern, optionally holds the memory, and reports what it did.
 *
 *   memhog [-N] [-H seconds] [-r readyfile] MIB
 *
 *   -N           no transparent huge pages for this memory
 *                (MADV_NOHUGEPAGE): khugepaged then never collapses it
 *                behind the program's back, which would allocate
 *                2 MiB pages while the memory is being held
 *   -H seconds   keep the memory for this long after touching it
 *                (SIGUSR1 or SIGTERM end the hold early, exit code 0)
 *   -r file      create this file once every page has been touched
 *
 * Exit codes: 0 success, 1 allocation (or madvise) failed, 2 verification failed,
 * 3 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t released;

static void on_signal(int sig)
{
	(void)sig;
	released = 1;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: memhog [-N] [-H seconds] [-r readyfile] MIB\n");
	exit(3);
}

int main(int argc, char **argv)
{
	const char *ready = NULL;
	double hold = 0, t0, t1;
	unsigned long mib, npages, i, bad = 0;
	long pagesz = sysconf(_SC_PAGESIZE);
	char *end, *mem;
	size_t len;
	int opt, nohuge = 0;

	while ((opt = getopt(argc, argv, "NH:r:")) != -1) {
		switch (opt) {
		case 'N':
			nohuge = 1;
			break;
		case 'H':
			hold = strtod(optarg, &end);
			if (*end || hold < 0)
				usage();
			break;
		case 'r':
			ready = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1)
		usage();
	mib = strtoul(argv[optind], &end, 10);
	if (*end || mib == 0)
		usage();

	signal(SIGUSR1, on_signal);
	signal(SIGTERM, on_signal);
	setvbuf(stdout, NULL, _IOLBF, 0);

	len = (size_t)mib << 20;
	npages = len / pagesz;
	t0 = now();
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		printf("memhog: FAIL mmap %lu MiB: %s\n", mib, strerror(errno));
		return 1;
	}
	if (nohuge && madvise(mem, len, MADV_NOHUGEPAGE)) {
		printf("memhog: FAIL madvise NOHUGEPAGE: %s\n", strerror(errno));
		return 1;
	}
	for (i = 0; i < npages; i++) {
		unsigned long *p = (unsigned long *)(mem + i * pagesz);

		p[0] = i ^ 0x5a5a5a5aUL;
		p[pagesz / sizeof(*p) - 1] = ~i;
	}
	for (i = 0; i < npages; i++) {
		unsigned long *p = (unsigned long *)(mem + i * pagesz);

		if (p[0] != (i ^ 0x5a5a5a5aUL) || p[pagesz / sizeof(*p) - 1] != ~i)
			bad++;
	}
	t1 = now();
	printf("memhog: allocated %lu MiB, touched %lu pages of %ld bytes in %.2f s\n",
	       mib, npages, pagesz, t1 - t0);
	if (bad) {
		printf("memhog: FAIL %lu pages lost their contents\n", bad);
		return 2;
	}
	printf("memhog: verified %lu pages\n", npages);
	if (ready) {
		int fd = open(ready, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0)
			close(fd);
	}
	if (hold > 0) {
		printf("memhog: holding for up to %.1f s\n", hold);
		while (!released && now() - t1 < hold)
			usleep(100000);
		printf("memhog: held %.1f s%s\n", now() - t1,
		       released ? " (released by signal)" : "");
	}
	munmap(mem, len);
	printf("memhog: OK\n");
	return 0;
}
