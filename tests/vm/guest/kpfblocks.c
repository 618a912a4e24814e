// SPDX-License-Identifier: GPL-2.0-only
/*
 * kpfblocks: where the balloon's pages are, in 2 MiB blocks.  Reads
 * /proc/kpageflags (root, CONFIG_PROC_PAGE_MONITOR) and prints one line
 *
 *   balloon_pages B blocks T balloon_blocks BB clean_blocks C
 *
 * B: pages flagged KPF_BALLOON; T: naturally aligned 2 MiB blocks whose
 * every frame is memory (no KPF_NOPAGE); BB: those of them holding at
 * least one balloon page; C = T - BB.  A huge page is a whole free
 * block, so without moving a balloon page at most C huge pages can exist.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#define KPF_BALLOON	23
#define KPF_NOPAGE	20
#define BLOCK_PAGES	512

int main(void)
{
	static uint64_t flags[BLOCK_PAGES];
	unsigned long balloon = 0, blocks = 0, bblocks = 0;
	int fd = open("/proc/kpageflags", O_RDONLY);
	ssize_t n;

	if (fd < 0) {
		perror("kpfblocks: /proc/kpageflags");
		return 1;
	}
	/* one block per read: the file is indexed by frame number */
	while ((n = read(fd, flags, sizeof(flags))) == sizeof(flags)) {
		unsigned long in_block = 0;
		int i, hole = 0;

		for (i = 0; i < BLOCK_PAGES; i++) {
			if (flags[i] & (1ULL << KPF_NOPAGE))
				hole = 1;
			if (flags[i] & (1ULL << KPF_BALLOON))
				in_block++;
		}
		balloon += in_block;
		if (hole)
			continue;
		blocks++;
		if (in_block)
			bblocks++;
	}
	if (n < 0) {
		perror("kpfblocks: read");
		return 1;
	}
	printf("balloon_pages %lu blocks %lu balloon_blocks %lu "
	       "clean_blocks %lu\n", balloon, blocks, bblocks, blocks - bblocks);
	return 0;
}
