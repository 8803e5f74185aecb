//! STUB: replaced by the readline work.
#![allow(missing_docs, unused_variables, clippy::all)]
use std::io::{self, Read};
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;
pub struct LineReader<R> {
    inner: R,
}
impl<R: Read> LineReader<R> {
    pub fn new(inner: R) -> LineReader<R> {
        unimplemented!()
    }
    pub fn with_capacity(cap: usize, inner: R) -> LineReader<R> {
        unimplemented!()
    }
    pub fn set_max_line(&mut self, max: usize) -> io::Result<()> {
        unimplemented!()
    }
    pub fn max_line(&self) -> usize {
        unimplemented!()
    }
    pub fn read_line(&mut self, line: &mut Vec<u8>) -> io::Result<usize> {
        unimplemented!()
    }
    pub fn has_line(&self) -> bool {
        unimplemented!()
    }
    pub fn buffered(&self) -> &[u8] {
        unimplemented!()
    }
    pub fn get_ref(&self) -> &R {
        &self.inner
    }
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
    pub fn into_inner(self) -> R {
        self.inner
    }
}
