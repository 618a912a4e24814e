// SPDX-License-Identifier: GPL-2.0-only
/*
 * frag MIB KEEP_EVERY: fragment guest memory the way a long-running
 * workload does.  Maps MIB MiB of anonymous memory in 4 KiB pages (no
 * transparent huge pages), touches it all, then gives back every page
 * except one in KEEP_EVERY, so the free memory it leaves is scattered
 * single pages.  Prints "ready" and holds what it kept until killed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t mib, len, i, keep_every;
	char *p;

	if (argc != 3) {
		fprintf(stderr, "usage: frag MIB KEEP_EVERY\n");
		return 2;
	}
	mib = strtoul(argv[1], NULL, 0);
	keep_every = strtoul(argv[2], NULL, 0);
	if (!mib || !keep_every) {
		fprintf(stderr, "frag: MIB and KEEP_EVERY must be positive\n");
		return 2;
	}
	len = mib << 20;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("frag: mmap");
		return 1;
	}
	madvise(p, len, MADV_NOHUGEPAGE);
	for (i = 0; i < len; i += page)
		p[i] = 1;
	for (i = 0; i < len / page; i++)
		if (i % keep_every)
			madvise(p + i * page, page, MADV_DONTNEED);
	printf("ready: kept %zu of %zu MiB in single pages\n",
	       mib / keep_every, mib);
	fflush(stdout);
	for (;;)
		pause();
	return 0;
}
