//! Container images: archives, digests, the blob store, safe layer unpacking (work in progress).
