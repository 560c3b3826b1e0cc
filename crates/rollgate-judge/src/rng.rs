//! A small deterministic generator (xorshift64*) for drawing samples: the
//! judge needs uniform picks, not cryptography, and stays pure and repeatable.

#[derive(Debug, Clone)]
pub(crate) struct XorShift(u64);

impl Default for XorShift {
    fn default() -> XorShift {
        XorShift(0x9e37_79b9_7f4a_7c15)
    }
}

impl XorShift {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
