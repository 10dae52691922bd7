/**
 * struct cma: a bounded, physically contiguous region and its allocation bitmap (one bit per
 * page, order_per_bit 0), after mm/cma.c cma_alloc/cma_release. It models contiguity only: each
 * buffer still gets its own backing memory; `offset` is where in the region it would sit.
 */
export class Cma {
  /** pages in the region */
  readonly count: number;
  private readonly bitmap: Uint8Array;

  constructor(
    /** cma_get_name(): "reserved" for the default area made from cma= or CONFIG_CMA_SIZE_MBYTES */
    readonly name: string,
    /** the region's bytes (a whole number of pages) */
    readonly size: number,
    /** the page the bitmap counts in: the framework's PAGE_SIZE */
    readonly pageSize: number,
    /** the region's base "physical address" (aligned past any CMA alignment) */
    readonly base = 0x4000_0000,
  ) {
    this.count = Math.floor(size / pageSize);
    this.bitmap = new Uint8Array(this.count);
  }

  /**
   * cma_alloc(count, align): the first free run of `count` pages starting at a multiple of
   * 2^align pages (bitmap_find_next_zero_area with mask 2^align - 1); null when there is none,
   * even if the free pages add up to enough.
   *
   * @param count pages wanted
   * @param align log2 of the alignment, in pages
   * @returns the first page of the run, or null
   */
  alloc(count: number, align: number): number | null {
    if (count <= 0 || count > this.count) return null;
    const step = 2 ** align;
    let start = 0;
    for (;;) {
      let index = this.bitmap.indexOf(0, start);
      if (index < 0) return null;
      index = Math.ceil(index / step) * step;
      const end = index + count;
      if (end > this.count) return null;
      const busy = this.bitmap.subarray(index, end).indexOf(1);
      if (busy < 0) {
        this.bitmap.fill(1, index, end);
        return index;
      }
      start = index + busy + 1;
    }
  }

  /**
   * cma_release: the run is free again.
   *
   * @param pageno the first page, as alloc returned it
   * @param count the pages alloc was asked for
   */
  release(pageno: number, count: number): void {
    this.bitmap.fill(0, pageno, pageno + count);
  }

  /** the longest run of free pages (what the largest unaligned allocation could take) */
  get largestFreeRun(): number {
    let best = 0;
    let run = 0;
    for (const bit of this.bitmap) {
      run = bit ? 0 : run + 1;
      if (run > best) best = run;
    }
    return best;
  }

  /** pages in use */
  get used(): number {
    let n = 0;
    for (const bit of this.bitmap) n += bit;
    return n;
  }
}
