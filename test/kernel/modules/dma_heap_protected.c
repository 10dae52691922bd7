// SPDX-License-Identifier: GPL-2.0-only
/*
 * dma_heap_protected: a dma-buf heap named "protected,secure-video", for the dma-heap
 * package's real-kernel matrix (test/kernel/, row arm64-7-16k). Not for real use.
 *
 * Linux 6.18+ registers "protected,*" heaps from drivers/tee/tee_heap.c. Their buffers live
 * in memory the normal world's CPU must not touch, so tee_heap's dma_buf_ops have attach,
 * detach, map_dma_buf, unmap_dma_buf and release, and NO mmap and NO begin_cpu_access /
 * end_cpu_access: the dma-buf core then answers mmap() with EINVAL and DMA_BUF_IOCTL_SYNC
 * with 0 (after waiting for the buffer's fences). tee_heap needs OP-TEE (or another TEE)
 * in a secure world to hand it protected memory, which the qemu rig does not have. This
 * module reproduces tee_heap's dma_buf_ops shape exactly over ordinary zeroed pages, so
 * that the REAL dma-buf core answers for a protected buffer, and the package's model of
 * protected heaps can be checked against it. Its buffers' exporter name is "tee", as
 * tee_heap's are (DEFINE_DMA_BUF_EXPORT_INFO fills in KBUILD_MODNAME, and tee_heap.o is
 * part of tee.ko), not the heap's name.
 *
 * The row loads it while a program runs (busybox insmod): that is how it proves that heaps
 * can appear after start-up. There is no module_exit: a dma-buf heap cannot be removed
 * (there is no dma_heap_remove), so the module cannot be unloaded either.
 */

#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <linux/dma-mapping.h>
#include <linux/err.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>

struct protected_buffer {
	size_t size;
	struct sg_table table; /* one entry per page, as a pool's table would be */
};

struct protected_attachment {
	struct sg_table table;
	struct device *dev;
};

static void free_table_pages(struct sg_table *table)
{
	struct scatterlist *sg;
	int i;

	for_each_sgtable_sg(table, sg, i)
		if (sg_page(sg))
			__free_page(sg_page(sg));
	sg_free_table(table);
}

/* tee_heap's copy_sg_table: each attachment maps its own copy of the buffer's table */
static int copy_sg_table(struct sg_table *dst, struct sg_table *src)
{
	struct scatterlist *dst_sg, *src_sg;
	int ret, i;

	ret = sg_alloc_table(dst, src->orig_nents, GFP_KERNEL);
	if (ret)
		return ret;
	dst_sg = dst->sgl;
	for_each_sgtable_sg(src, src_sg, i) {
		sg_set_page(dst_sg, sg_page(src_sg), src_sg->length, src_sg->offset);
		dst_sg = sg_next(dst_sg);
	}
	return 0;
}

static int protected_attach(struct dma_buf *dmabuf, struct dma_buf_attachment *attachment)
{
	struct protected_buffer *buf = dmabuf->priv;
	struct protected_attachment *a;
	int ret;

	a = kzalloc(sizeof(*a), GFP_KERNEL);
	if (!a)
		return -ENOMEM;
	ret = copy_sg_table(&a->table, &buf->table);
	if (ret) {
		kfree(a);
		return ret;
	}
	a->dev = attachment->dev;
	attachment->priv = a;
	return 0;
}

static void protected_detach(struct dma_buf *dmabuf, struct dma_buf_attachment *attachment)
{
	struct protected_attachment *a = attachment->priv;

	sg_free_table(&a->table);
	kfree(a);
}

static struct sg_table *protected_map_dma_buf(struct dma_buf_attachment *attachment,
					      enum dma_data_direction direction)
{
	struct protected_attachment *a = attachment->priv;
	int ret;

	/* no CPU cache maintenance: the CPU never sees protected memory */
	ret = dma_map_sgtable(attachment->dev, &a->table, direction, DMA_ATTR_SKIP_CPU_SYNC);
	if (ret)
		return ERR_PTR(ret);
	return &a->table;
}

static void protected_unmap_dma_buf(struct dma_buf_attachment *attachment,
				    struct sg_table *table, enum dma_data_direction direction)
{
	dma_unmap_sgtable(attachment->dev, table, direction, DMA_ATTR_SKIP_CPU_SYNC);
}

static void protected_release(struct dma_buf *dmabuf)
{
	struct protected_buffer *buf = dmabuf->priv;

	free_table_pages(&buf->table);
	kfree(buf);
}

/* tee_heap_buf_ops, member for member: no .mmap, no .begin_cpu_access/.end_cpu_access */
static const struct dma_buf_ops protected_buf_ops = {
	.attach = protected_attach,
	.detach = protected_detach,
	.map_dma_buf = protected_map_dma_buf,
	.unmap_dma_buf = protected_unmap_dma_buf,
	.release = protected_release,
};

static struct dma_buf *protected_allocate(struct dma_heap *heap, unsigned long len,
					  u32 fd_flags, u64 heap_flags)
{
	DEFINE_DMA_BUF_EXPORT_INFO(exp_info);
	unsigned long npages = len >> PAGE_SHIFT; /* dma-heap.c has page-aligned len */
	struct protected_buffer *buf;
	struct scatterlist *sg;
	struct dma_buf *dmabuf;
	int ret, i;

	buf = kzalloc(sizeof(*buf), GFP_KERNEL);
	if (!buf)
		return ERR_PTR(-ENOMEM);
	buf->size = len;
	ret = sg_alloc_table(&buf->table, npages, GFP_KERNEL);
	if (ret)
		goto err_kfree;
	for_each_sgtable_sg(&buf->table, sg, i) {
		struct page *page = alloc_page(GFP_KERNEL | __GFP_ZERO | __GFP_NOWARN);

		if (!page) {
			ret = -ENOMEM;
			goto err_pages;
		}
		sg_set_page(sg, page, PAGE_SIZE, 0);
	}

	exp_info.exp_name = "tee"; /* what tee_heap's buffers report (KBUILD_MODNAME of tee.ko) */
	exp_info.ops = &protected_buf_ops;
	exp_info.size = len;
	exp_info.flags = fd_flags;
	exp_info.priv = buf;
	dmabuf = dma_buf_export(&exp_info);
	if (IS_ERR(dmabuf)) {
		ret = PTR_ERR(dmabuf);
		goto err_pages;
	}
	return dmabuf;

err_pages:
	free_table_pages(&buf->table);
err_kfree:
	kfree(buf);
	return ERR_PTR(ret);
}

static const struct dma_heap_ops protected_heap_ops = {
	.allocate = protected_allocate,
};

static int __init dma_heap_protected_init(void)
{
	struct dma_heap_export_info exp_info = {
		.name = "protected,secure-video", /* tee_heap's TEE_DMA_HEAP_SECURE_VIDEO_PLAY */
		.ops = &protected_heap_ops,
	};
	struct dma_heap *heap = dma_heap_add(&exp_info);

	return PTR_ERR_OR_ZERO(heap);
}
module_init(dma_heap_protected_init);
/* no module_exit: a dma-buf heap cannot be removed */

MODULE_DESCRIPTION("dma-heap test: a protected,secure-video heap shaped like tee_heap");
MODULE_LICENSE("GPL");
MODULE_IMPORT_NS("DMA_BUF");
MODULE_IMPORT_NS("DMA_BUF_HEAP");
