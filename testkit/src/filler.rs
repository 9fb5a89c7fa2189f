//! Deterministic text for benchmarks: the same events in every run, without a random-number dependency.

/// xorshift64*: deterministic filler without a dependency.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[(self.next_u64() % words.len() as u64) as usize]
    }
}

/// Words of log messages: text that compresses like real logs.
pub const WORDS: &[&str] = &[
    "request",
    "completed",
    "user",
    "session",
    "token",
    "refresh",
    "cache",
    "miss",
    "hit",
    "upstream",
    "timeout",
    "retry",
    "backend",
    "pool",
    "connection",
    "opened",
    "closed",
    "latency",
    "bytes",
    "sent",
    "received",
    "error",
    "warning",
    "db",
    "query",
    "select",
    "insert",
    "update",
    "auth",
    "ok",
    "denied",
    "queue",
    "worker",
    "job",
    "done",
    "started",
    "shard",
    "replica",
    "leader",
    "follower",
    "gc",
    "pause",
    "heap",
    "alloc",
    "route",
    "matched",
    "tls",
    "handshake",
    "cert",
    "expired",
    "renewed",
    "dns",
    "lookup",
    "resolved",
    "ipv4",
    "ipv6",
    "client",
    "server",
    "metric",
    "span",
    "trace",
    "sampled",
    "dropped",
    "flushed",
];

/// Appends words of [`WORDS`] and spaces to `s` until it grew by at least `len` bytes.
pub fn filler(r: &mut Rng, s: &mut String, len: usize) {
    let start = s.len();
    while s.len() - start < len {
        s.push_str(r.pick(WORDS));
        s.push(' ');
    }
}
