//! A response body that hands a large shared buffer (a CRL of 50 MB) to the connection in small
//! zero-copy slices. actix copies each body chunk into the connection's write buffer, and it
//! asks for the next chunk only when that buffer has room, so slices keep the copy per download
//! at one slice instead of the whole CRL.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;

/// Bytes per slice handed to the connection.
const SLICE: usize = 64 * 1024;

/// A body served from a shared buffer, [`SLICE`] bytes at a time, with its length known up front
/// (Content-Length, no chunked encoding).
#[derive(Debug)]
pub struct SlicedBody {
    rest: Bytes,
}

impl SlicedBody {
    /// A body over `bytes` (shared, not copied).
    pub fn new(bytes: Bytes) -> Self {
        SlicedBody { rest: bytes }
    }
}

impl MessageBody for SlicedBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.rest.len() as u64)
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let take = self.rest.len().min(SLICE);
        Poll::Ready(Some(Ok(self.rest.split_to(take))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn slices_add_up_to_the_buffer_without_copying() {
        let buffer = Bytes::from((0..200_000u32).map(|i| i as u8).collect::<Vec<u8>>());
        let body = SlicedBody::new(buffer.clone());
        assert_eq!(body.size(), BodySize::Sized(200_000));
        let collected = actix_web::body::to_bytes(body).await.unwrap();
        assert_eq!(collected, buffer);

        let mut body = SlicedBody::new(buffer.clone());
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let Poll::Ready(Some(Ok(first))) = Pin::new(&mut body).poll_next(&mut cx) else {
            panic!("no first slice");
        };
        assert_eq!(first.len(), SLICE);
        assert_eq!(first.as_ptr(), buffer.as_ptr(), "a slice shares the buffer");
    }
}
