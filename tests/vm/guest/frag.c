// SPDX-License-Identifier: GPL-2.0-only
/*
 * frag MIB FREE_EVERY: fragment guest memory the way a long-running
 * workload does.  Maps MIB MiB of anonymous memory in 4 KiB pages (no
 * transparent huge pages), touches it all, then gives back one page in
 * FREE_EVERY, so the free memory it leaves is scattered single pages
 * inside memory that stays in use.  Prints "ready" and holds the rest
 * until killed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t mib, len, i, free_every;
	char *p;

	if (argc != 3) {
		fprintf(stderr, "usage: frag MIB FREE_EVERY\n");
		return 2;
	}
	mib = strtoul(argv[1], NULL, 0);
	free_every = strtoul(argv[2], NULL, 0);
	if (!mib || !free_every) {
		fprintf(stderr, "frag: MIB and FREE_EVERY must be positive\n");
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
		if (i % free_every == free_every - 1 &&
		    madvise(p + i * page, page, MADV_DONTNEED)) {
			/* e.g. a kernel built without ADVISE_SYSCALLS */
			perror("frag: madvise(MADV_DONTNEED)");
			return 1;
		}
	printf("ready: freed %zu of %zu MiB in single pages\n",
	       mib / free_every, mib);
	fflush(stdout);
	for (;;)
		pause();
	return 0;
}
