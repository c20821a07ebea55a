//! A streaming upload that can always be given up safely.

use std::pin::Pin;
use std::task::{Context, Poll};

use object_store::buffered::BufWriter;
use tokio::io::AsyncWrite;

/// object_store's [`BufWriter`] with an [`abort`](Upload::abort) that is safe whatever happened
/// before. `BufWriter::abort` panics once `shutdown()` has begun, and a failed `shutdown()` is
/// exactly when a caller wants to give up (a backup whose tarball could not be completed).
pub struct Upload {
    inner: BufWriter,
    shut_down: bool,
}

impl Upload {
    pub(crate) fn new(inner: BufWriter) -> Upload {
        Upload {
            inner,
            shut_down: false,
        }
    }

    /// Deletes the parts uploaded so far. After `shutdown()` began there is nothing left to
    /// abort: the upload either completed or its completion failed, and the object store
    /// discards (or expires) the parts of a completion that failed.
    pub async fn abort(&mut self) -> object_store::Result<()> {
        if self.shut_down {
            return Ok(());
        }
        self.shut_down = true;
        self.inner.abort().await
    }
}

impl AsyncWrite for Upload {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.shut_down = true;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
