//! Scaling benchmark: simulated cost and deadline misses per load shape (filled in below).

fn main() {}
