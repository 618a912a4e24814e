// SPDX-License-Identifier: GPL-2.0-only
/*
 * pattern - keep patterned data next to the balloon and check it.
 *
 *   pattern [-r readyfile] MIB
 *
 * Maps 2 * MIB MiB of anonymous memory (2 MiB aligned, transparent huge
 * pages allowed), writes every 64-bit word with a value derived from its
 * offset, then gives every other 2 MiB chunk back (munmap).  MIB MiB of
 * data stay, with the guest's freed 2 MiB blocks between the chunks: a
 * balloon that takes those blocks has patterned data next to every one
 * of them, so a frame handed to the host that is not the balloon's
 * (off by one, say) is very likely a data page, and the host's discard
 * reads back as zeros.  The guest has no swap, so nothing else takes the
 * data away.
 *
 * SIGUSR1: check every word of the data now and print
 *   "pattern: check N: P pages, B bad (Z zeroed)"
 * plus the first few bad pages.  SIGTERM: exit, 0 if every check found
 * the data intact, 2 if one did not; 1 if the memory could not be had,
 * 3 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHUNK (2UL << 20)

static volatile sig_atomic_t check_req, stop_req;

static void on_usr1(int sig)
{
	(void)sig;
	check_req = 1;
}

static void on_term(int sig)
{
	(void)sig;
	stop_req = 1;
}

static inline uint64_t value(uint64_t off)
{
	return off * 0x9e3779b97f4a7c15ULL + 0x0123456789abcdefULL;
}

/* Data chunk i is at base + 2 * i * CHUNK; returns the bad pages. */
static unsigned long check(char *base, unsigned long chunks, long pagesz,
			   unsigned long *zeroed, unsigned long *pages)
{
	unsigned long c, bad = 0, words = pagesz / 8;

	*zeroed = *pages = 0;
	for (c = 0; c < chunks; c++) {
		char *chunk = base + 2 * c * CHUNK;
		unsigned long p;

		for (p = 0; p < CHUNK / pagesz; p++) {
			uint64_t *w = (uint64_t *)(chunk + p * pagesz);
			uint64_t off = (uint64_t)((char *)w - base);
			unsigned long i, wrong = 0, zero = 0;

			for (i = 0; i < words; i++) {
				if (w[i] != value(off + 8 * i))
					wrong++;
				if (!w[i])
					zero++;
			}
			(*pages)++;
			if (!wrong)
				continue;
			bad++;
			if (zero == words)
				(*zeroed)++;
			if (bad <= 5)
				printf("pattern: page at offset 0x%lx: %lu of %lu "
				       "words wrong%s, first 0x%llx (expected "
				       "0x%llx)\n", (unsigned long)off, wrong,
				       words, zero == words ? ", all zero" : "",
				       (unsigned long long)w[0],
				       (unsigned long long)value(off));
		}
	}
	return bad;
}

int main(int argc, char **argv)
{
	unsigned long mib, chunks, c, bad, zeroed, pages, checks = 0, failed = 0;
	long pagesz = sysconf(_SC_PAGESIZE);
	const char *ready = NULL;
	char *map, *base, *end;
	size_t len;
	int opt;

	while ((opt = getopt(argc, argv, "r:")) != -1) {
		if (opt != 'r') {
			fprintf(stderr, "usage: pattern [-r readyfile] MIB\n");
			return 3;
		}
		ready = optarg;
	}
	if (optind != argc - 1)
		return 3;
	mib = strtoul(argv[optind], &end, 10);
	if (*end || mib < 2) {
		fprintf(stderr, "usage: pattern [-r readyfile] MIB (>= 2)\n");
		return 3;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGUSR1, on_usr1);
	signal(SIGTERM, on_term);

	chunks = mib / 2;
	len = 2 * chunks * CHUNK;
	map = mmap(NULL, len + CHUNK, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED) {
		printf("pattern: FAIL mmap: %s\n", strerror(errno));
		return 1;
	}
	base = (char *)(((uintptr_t)map + CHUNK - 1) & ~(CHUNK - 1));
	madvise(base, len, MADV_HUGEPAGE);
	for (c = 0; c < len / 8; c++)
		((uint64_t *)base)[c] = value(8 * c);
	/* odd chunks back to the guest: free 2 MiB blocks between the data */
	for (c = 0; c < chunks; c++)
		munmap(base + (2 * c + 1) * CHUNK, CHUNK);
	bad = check(base, chunks, pagesz, &zeroed, &pages);
	printf("pattern: %lu MiB in %lu chunks of 2 MiB, %lu pages, %s\n",
	       chunks * 2, chunks, pages, bad ? "FAIL: wrong at once" : "ok");
	if (bad)
		return 2;
	if (ready) {
		int fd = open(ready, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0)
			close(fd);
	}
	while (!stop_req) {
		if (check_req) {
			check_req = 0;
			bad = check(base, chunks, pagesz, &zeroed, &pages);
			printf("pattern: check %lu: %lu pages, %lu bad (%lu "
			       "zeroed)\n", ++checks, pages, bad, zeroed);
			failed += !!bad;
		}
		usleep(20000);
	}
	printf("pattern: %lu checks, %lu found bad pages\n", checks, failed);
	return failed ? 2 : 0;
}
