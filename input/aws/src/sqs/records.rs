//! The streaming splitter of `{"Records": [...]}` documents (CloudTrail files), in one pass over the bytes:
//! - it cuts the top-level `Records` array into its elements (memory: the read buffer and the largest element);
//! - it checks each element as [`RecordCheck`] says: its structure (strings, escapes, brackets, no stray byte
//!   outside strings; the default) or its whole JSON grammar. A record that fails is reported on its own, the
//!   others are delivered; the records are cut at the same places either way;
//! - it notes where the values of the head fields (`eventTime`, `eventSource`, `recipientAccountId`,
//!   `awsRegion`) are, so no record is parsed a second time.
//!
//! It works like the first stage of simdjson: each block of 64 bytes is turned into bit masks (quotes,
//! backslashes, brackets, `:`, `,`, control and non-ASCII bytes) with vector compares (AVX-512, AVX2 or SSE2), and
//! strings are found with a prefix XOR of the unescaped quotes. The structure check then counts brackets a block
//! at a time (popcounts) and visits only the brackets near the record's top level and the `:` that may follow a
//! head field's key (told apart by the distance to the key's opening quote, then by the key's last 8 bytes); the
//! grammar check visits every structural character and string boundary. Elements are cut from one buffer that
//! always holds the current element whole, so they are handed out without a copy.

use std::borrow::Cow;
use std::io::{ErrorKind, Read};
use std::ops::Range;

use crate::sqs::decode::{classify, text, ObjectError, Out, ReadStats};

/// The top-level fields of a CloudTrail record that tags and event times are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadField {
    EventTime = 0,
    EventSource = 1,
    RecipientAccountId = 2,
    AwsRegion = 3,
}

impl HeadField {
    #[cfg(test)]
    const ALL: [HeadField; 4] = [
        HeadField::EventTime,
        HeadField::EventSource,
        HeadField::RecipientAccountId,
        HeadField::AwsRegion,
    ];

    fn of_key(key: &[u8]) -> Option<HeadField> {
        match key {
            b"eventTime" => Some(HeadField::EventTime),
            b"eventSource" => Some(HeadField::EventSource),
            b"recipientAccountId" => Some(HeadField::RecipientAccountId),
            b"awsRegion" => Some(HeadField::AwsRegion),
            _ => None,
        }
    }
}

/// The brackets of an element followed in `Mode::Structure`.
#[derive(Debug, Clone, Copy, Default)]
struct Brackets {
    /// Open brackets in the element (1: its top level).
    depth: u32,
    /// The bracket that opened the current top-level value (`{` or `[`).
    value_open: u8,
}

/// What [`Brackets::walk`] found in a block.
struct Walk {
    /// The state after the block (or after the element's end).
    brackets: Brackets,
    /// The bits at the element's top level.
    top_level: u64,
    /// The bit of the element's closing brace.
    end: Option<usize>,
    /// The first closing bracket of the wrong kind (found, expected).
    mismatch: Option<(u8, u8)>,
}

impl Brackets {
    /// In a nested value, the block's brackets `open` and `close` cannot bring the element back to its top
    /// level: counts them all at once and returns true.
    #[inline(always)]
    fn nested_through(&mut self, open: u64, close: u64) -> bool {
        if self.depth < 2 || close.count_ones() >= self.depth - 1 {
            return false;
        }
        self.depth = self.depth + open.count_ones() - close.count_ones();
        true
    }

    /// Follows the brackets `open` and `close` (outside strings) of `block` from bit `from`, one by one while
    /// they may reach the top level, in bulk otherwise.
    #[inline(always)]
    fn walk(mut self, block: &[u8], from: usize, open: u64, close: u64) -> Walk {
        let (mut top_level, mut end, mut mismatch) = (0, None, None);
        let mut brackets = open | close;
        let mut segment = from;
        loop {
            let next = if brackets == 0 {
                BLOCK
            } else {
                brackets.trailing_zeros() as usize
            };
            if self.depth == 1 {
                top_level |= bits_from_bit(segment) & bits_below_or_all(next);
            }
            if brackets == 0 {
                break;
            }
            brackets &= brackets - 1;
            let c = block[next];
            if open >> next & 1 == 1 {
                if self.depth == 1 {
                    self.value_open = c;
                }
                self.depth += 1;
            } else {
                self.depth -= 1;
                // `}` and `]` are `{` and `[` plus 2.
                let expected = match self.depth {
                    0 => b'}',
                    1 => self.value_open + 2,
                    _ => c,
                };
                if c != expected && mismatch.is_none() {
                    mismatch = Some((c, expected));
                }
                if self.depth == 0 {
                    end = Some(next);
                    break;
                }
            }
            segment = next + 1;
            if self.nested_through(open & brackets, close & brackets) {
                break;
            }
        }
        Walk {
            brackets: self,
            top_level,
            end,
            mismatch,
        }
    }
}

/// What the splitter learnt about one element while cutting it.
#[derive(Debug, Default, Clone)]
pub struct RecordHead {
    /// Byte ranges (inside the element) of the string values of the head fields, without the quotes.
    fields: [Option<Range<usize>>; 4],
    /// Which of them contain an escape sequence.
    escaped: [bool; 4],
    /// Why the element is not valid JSON (None: it is).
    pub invalid: Option<String>,
    /// The element may contain bytes >= 0x80 (false: it is ASCII, hence UTF-8, for sure).
    non_ascii: bool,
}

impl RecordHead {
    /// The element's text: UTF-8, or latin-1 when it is not valid UTF-8 ([`text`]); ASCII elements skip the check.
    pub fn text<'a>(&self, record: &'a [u8]) -> Cow<'a, str> {
        if self.non_ascii {
            return text(record);
        }
        debug_assert!(record.is_ascii());
        // SAFETY: the scanner saw no byte >= 0x80 in the element: ASCII is valid UTF-8.
        Cow::Borrowed(unsafe { std::str::from_utf8_unchecked(record) })
    }

    /// The value of `f` in `record` (the element's bytes), unescaped; None when absent or not a string.
    pub fn get<'a>(&self, record: &'a [u8], f: HeadField) -> Option<Cow<'a, str>> {
        let r = self.fields[f as usize].clone()?;
        if !self.escaped[f as usize] {
            return Some(self.text(&record[r]));
        }
        let quoted = &record[r.start - 1..r.end + 1];
        serde_json::from_slice::<String>(quoted)
            .ok()
            .map(Cow::Owned)
    }
}

/// Bytes asked from the reader per read (large enough for a `BufReader` of this size to hand its reads through
/// without copying).
const READ_SIZE: usize = 256 * 1024;
/// Bytes per scanned block (one bit per byte in a `u64` mask).
const BLOCK: usize = 64;
/// Longest top-level key kept to compare with `Records` (longer strings cannot be it).
const KEY_KEEP: usize = 32;

/// The largest record held in memory: a longer one (or an unbalanced one that never ends) makes the object bad
/// instead of growing the buffer without bound.
pub const MAX_RECORD: usize = 64 << 20;

/// How much of each record the splitter checks (the records are cut at the same places either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordCheck {
    /// What cutting needs: strings (escape sequences, no raw control character inside), brackets (balanced, a
    /// top-level value closed by its own kind) and no stray byte outside strings (non-ASCII, backslash, control
    /// character). The brackets inside a record are counted in bulk (a popcount per block), so the scan costs
    /// little more than the bit masks; a record whose `:`, `,` or literals are misplaced is delivered as written.
    #[default]
    Structure,
    /// Also the whole JSON grammar of every record (keys, `:`, `,`, numbers, literals, nested brackets): a record
    /// that is not valid JSON is reported and set aside. Visits every structural character (about 2x the CPU).
    Grammar,
}

/// Streams the elements of the top-level `Records` array into `out`.
pub fn split_records<R: Read>(
    r: &mut R,
    out: &mut dyn Out,
    check: RecordCheck,
) -> Result<ReadStats, ObjectError> {
    split_records_up_to(r, out, MAX_RECORD, Vector::detect(), check)
}

/// The vector instructions the scanner uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
enum Vector {
    /// AVX-512 (F and BW) compares straight into masks and a PCLMULQDQ prefix XOR (checked at run time).
    Avx512,
    /// AVX2 compares and a PCLMULQDQ prefix XOR (checked at run time).
    Avx2,
    /// SSE2 on x86-64 (always there), scalar code elsewhere.
    #[default]
    Baseline,
}

impl Vector {
    fn detect() -> Vector {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            // Bit operations (POPCNT, TZCNT, BLSR) come with every CPU that has AVX2.
            let bits = has!("pclmulqdq") && has!("popcnt") && has!("bmi1") && has!("lzcnt");
            if bits && has!("avx512f") && has!("avx512bw") {
                return Vector::Avx512;
            }
            if bits && has!("avx2") {
                return Vector::Avx2;
            }
        }
        Vector::Baseline
    }

    /// The kernels this CPU can run, the fastest first.
    #[cfg(test)]
    fn available() -> Vec<Vector> {
        [Vector::Avx512, Vector::Avx2, Vector::Baseline]
            .into_iter()
            .filter(|v| *v >= Vector::detect())
            .collect()
    }
}

fn split_records_up_to<R: Read>(
    r: &mut R,
    out: &mut dyn Out,
    max_record: usize,
    vector: Vector,
    check: RecordCheck,
) -> Result<ReadStats, ObjectError> {
    let mut stats = ReadStats::default();
    let mut s = Splitter {
        vector,
        check,
        ..Splitter::default()
    };
    let mut buf = vec![0u8; 2 * READ_SIZE];
    let mut end = 0usize;
    let mut eof = false;
    let mut bom_checked = false;
    loop {
        if !bom_checked && (end >= 3 || eof) {
            bom_checked = true;
            if buf[..end].starts_with(b"\xef\xbb\xbf") {
                buf[..3].fill(b' ');
            }
        }
        if bom_checked && !s.started {
            s.find_start(&buf[..end])?;
        }
        if s.started {
            s.scan(&buf[..end], out, &mut stats)?;
        }
        if eof {
            break;
        }
        let keep = s.keep_from(&buf);
        if keep > 0 {
            buf.copy_within(keep..end, 0);
            end -= keep;
            s.shift(keep);
        }
        if end > max_record {
            return Err(ObjectError::Corrupt(format!(
                "Records element {} is larger than {} bytes (or never ends)",
                s.index, max_record
            )));
        }
        if buf.len() - end < READ_SIZE {
            buf.resize(end + READ_SIZE, 0);
        }
        let n = read_some(r, &mut buf[end..])?;
        stats.bytes += n as u64;
        end += n;
        eof = n == 0;
    }
    if !s.started {
        return Ok(stats);
    }
    if s.pos < end {
        // The last partial block, padded with spaces (whitespace changes nothing outside strings, and a string
        // still open at the end is an error anyway).
        buf.resize(buf.len().max(s.pos + BLOCK), 0);
        buf[end..s.pos + BLOCK].fill(b' ');
        s.scan(&buf[..s.pos + BLOCK], out, &mut stats)?;
    }
    if !s.complete() {
        return Err(s.truncated());
    }
    if !s.seen_records {
        // Not a CloudTrail file: reading it as one would yield nothing, and acknowledging it would drop it in silence.
        return Err(ObjectError::Corrupt(
            "JSON document without a top-level \"Records\" array (not a CloudTrail file)".into(),
        ));
    }
    Ok(stats)
}

fn read_some<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, ObjectError> {
    loop {
        match r.read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(classify(e)),
        }
    }
}

/// A `Splitter` method `$name` running [`Splitter::scan_with`] compiled for the CPU features `$features`, with the
/// masks of `$masks` and the carry-less prefix XOR (the block loop, the masks and the prefix XOR are inlined into
/// it). Only called when [`Vector::detect`] found those features.
macro_rules! kernel_scan {
    ($(#[$doc:meta])* $name:ident, $features:literal, $masks:ident) => {
        $(#[$doc])*
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(
            &mut self,
            buf: &[u8],
            out: &mut dyn Out,
            stats: &mut ReadStats,
        ) -> Result<(), ObjectError> {
            // SAFETY: only reached when the CPU has the features this function is compiled for.
            self.scan_with(
                buf,
                out,
                stats,
                |b| unsafe { $masks(b) },
                |x| unsafe { prefix_xor_clmul(x) },
            )
        }
    };
}

/// Grammar state inside an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Expect {
    /// A value (after `:` or `,` in an array).
    #[default]
    Value,
    /// A value or `]` (after `[`).
    ValueOrEnd,
    /// A key or `}` (after `{`).
    KeyOrEnd,
    /// A key (after `,` in an object).
    Key,
    /// `:` after a key.
    Colon,
    /// `,` or the end of the enclosing container.
    Next,
}

/// Where the scanner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Mode {
    /// Outside the elements: only brackets, the top-level keys and the `Records` array are followed.
    #[default]
    Document,
    /// Inside an element, checking its grammar ([`RecordCheck::Grammar`]).
    Element,
    /// Inside an element known to be invalid: only brackets are counted to find its end.
    Skipping,
    /// Inside an element, following its structure only ([`RecordCheck::Structure`]).
    Structure,
}

/// State of the scanner, kept across blocks and reads. Positions are offsets in the read buffer (shifted when
/// the buffer is compacted).
#[derive(Default)]
struct Splitter {
    vector: Vector,
    check: RecordCheck,
    started: bool,
    /// The next byte to scan.
    pos: usize,
    // Carries between blocks.
    /// All ones when the previous block ended inside a string.
    in_string: u64,
    /// The first byte of the next block is escaped by a backslash.
    escape_next: bool,
    /// One past the last backslash of the previous blocks (0: none since the last compaction).
    last_backslash: usize,
    /// One past the last control character (< 0x20) of the previous blocks (0: none since the last compaction).
    last_control: usize,
    // The document around the elements.
    mode: Mode,
    /// Bracket depth of the document outside the elements (an element lies at depth 2, inside `Records`).
    depth: u32,
    in_array: bool,
    seen_records: bool,
    /// The open top-level string (a key candidate) starts here; None when it is too long to be `Records`.
    key_start: Option<usize>,
    key_is_records: bool,
    key_colon: bool,
    /// End of the last visited character: the bytes from here to the next one lie outside strings.
    last: usize,
    // The current element.
    elem_start: usize,
    index: u64,
    stack: Vec<u8>,
    /// Open brackets while skipping an invalid element.
    skip_depth: usize,
    expect: Expect,
    /// The string being read: where its content starts, whether it is a key of the element's top-level object.
    str_start: usize,
    str_is_top_key: bool,
    /// The head field whose value comes next.
    want: Option<HeadField>,
    head: RecordHead,
    /// Non-ASCII bytes of the block being scanned, and where it starts.
    block_high: u64,
    block_pos: usize,
    /// The unescaped quotes of the previous block (a key's opening quote may lie there).
    prev_quote: u64,
    // The current element, in `Mode::Structure`.
    brackets: Brackets,
    /// Where the `:` after each head field's key is (offset in the element); the value is read at the end.
    head_colon: [Option<usize>; 4],
    /// The head fields whose key the element already had (bit `1 << field`): the first occurrence counts.
    head_seen: u8,
    /// The element contains a backslash (its escape sequences are checked at its end).
    elem_escapes: bool,
}

/// Bit masks of one block (bit k: byte k).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Masks {
    quote: u64,
    backslash: u64,
    /// `{ [`
    open: u64,
    /// `} ]`
    close: u64,
    colon: u64,
    comma: u64,
    /// Bytes >= 0x80 (not ASCII).
    high: u64,
    /// Control characters (< 0x20): whitespace (`\t \n \r`) or invalid outside strings, invalid inside them.
    control: u64,
    /// Spaces.
    space: u64,
}

impl Masks {
    /// `{ } [ ] : ,`
    #[inline(always)]
    fn structural(&self) -> u64 {
        self.open | self.close | self.colon | self.comma
    }

    /// Adds the masks of a lane of the block (its bits start at bit `shift`), in the field order.
    #[inline(always)]
    fn add_lane(&mut self, shift: usize, lane: [u64; 9]) {
        let [quote, backslash, open, close, colon, comma, high, control, space] = lane;
        self.quote |= quote << shift;
        self.backslash |= backslash << shift;
        self.open |= open << shift;
        self.close |= close << shift;
        self.colon |= colon << shift;
        self.comma |= comma << shift;
        self.high |= high << shift;
        self.control |= control << shift;
        self.space |= space << shift;
    }
}

/// The block being scanned: where it starts, its masks (quotes unescaped) and its bytes inside strings.
#[derive(Clone, Copy)]
struct Block<'m> {
    p: usize,
    m: &'m Masks,
    in_string: u64,
}

/// What a string's content holds besides plain characters.
#[derive(Debug, Clone, Copy)]
struct Content {
    /// A backslash (escape sequences to check and to decode).
    escape: bool,
    /// A raw control character (not allowed in JSON strings).
    control: bool,
}

impl Splitter {
    /// Skips whitespace up to the document's `{` (from `pos`, up to the end of `buf`); anything else is not a
    /// `Records` document.
    fn find_start(&mut self, buf: &[u8]) -> Result<(), ObjectError> {
        let Some(at) = buf[self.pos..]
            .iter()
            .position(|b| !b.is_ascii_whitespace())
        else {
            self.pos = buf.len();
            return Ok(());
        };
        let i = self.pos + at;
        if buf[i] != b'{' {
            return Err(ObjectError::Corrupt(format!(
                "expected a JSON object with \"Records\", found byte 0x{:02x}",
                buf[i]
            )));
        }
        self.started = true;
        self.depth = 1;
        self.pos = i + 1;
        self.last = i + 1;
        Ok(())
    }

    /// Scans the whole blocks of `buf` from `pos`, with AVX-512 or AVX2 when the CPU has it.
    fn scan(
        &mut self,
        buf: &[u8],
        out: &mut dyn Out,
        stats: &mut ReadStats,
    ) -> Result<(), ObjectError> {
        #[cfg(target_arch = "x86_64")]
        match self.vector {
            // SAFETY: `Vector::Avx512` is only chosen when the CPU has AVX-512 F and BW, PCLMULQDQ and the bit
            // operations.
            Vector::Avx512 => return unsafe { self.scan_avx512(buf, out, stats) },
            // SAFETY: `Vector::Avx2` is only chosen when the CPU has AVX2, PCLMULQDQ and the bit operations.
            Vector::Avx2 => return unsafe { self.scan_avx2(buf, out, stats) },
            Vector::Baseline => {}
        }
        self.scan_with(buf, out, stats, masks, prefix_xor)
    }

    kernel_scan!(
        /// [`Self::scan`] compiled for AVX-512 (F, BW) and PCLMULQDQ.
        scan_avx512,
        "avx512f,avx512bw,pclmulqdq,popcnt,bmi1,lzcnt",
        masks_avx512
    );
    kernel_scan!(
        /// [`Self::scan`] compiled for AVX2 and PCLMULQDQ.
        scan_avx2,
        "avx2,pclmulqdq,popcnt,bmi1,lzcnt",
        masks_avx2
    );

    #[inline(always)]
    fn scan_with(
        &mut self,
        buf: &[u8],
        out: &mut dyn Out,
        stats: &mut ReadStats,
        masks: impl Fn(&[u8; BLOCK]) -> Masks,
        prefix_xor: impl Fn(u64) -> u64,
    ) -> Result<(), ObjectError> {
        while self.pos + BLOCK <= buf.len() {
            if self.mode == Mode::Structure {
                self.structure_blocks(buf, &masks, &prefix_xor);
                if self.pos + BLOCK > buf.len() {
                    break;
                }
            }
            let m = masks(buf[self.pos..self.pos + BLOCK].try_into().expect("a block"));
            self.block_high = m.high;
            self.block_pos = self.pos;
            if self.mode != Mode::Document && m.high != 0 {
                // Conservative: the bytes may belong to the next element (it then checks its text).
                self.head.non_ascii = true;
            }
            self.block(buf, self.pos, m, &prefix_xor, out, stats)?;
            self.pos += BLOCK;
        }
        Ok(())
    }

    /// The common blocks of an element in `Mode::Structure`, from `pos` on, with the state in registers: blocks
    /// inside a nested value that cannot bring the element back to its top level (their brackets are counted),
    /// and blocks of the top level without brackets (their `:` after head-field keys are noted). Stops before a
    /// block that needs more (a bracket near the top level, a backslash, a control or non-ASCII byte outside
    /// strings): [`Self::block`] handles it.
    #[inline(always)]
    fn structure_blocks(
        &mut self,
        buf: &[u8],
        masks: &impl Fn(&[u8; BLOCK]) -> Masks,
        prefix_xor: &impl Fn(u64) -> u64,
    ) {
        if self.escape_next {
            return;
        }
        let (mut p, mut carry, mut prev_quote) = (self.pos, self.in_string, self.prev_quote);
        let mut brackets = self.brackets;
        let mut high = 0;
        while p + BLOCK <= buf.len() {
            let m = masks(buf[p..p + BLOCK].try_into().expect("a block"));
            if m.backslash != 0 {
                break;
            }
            let in_string = prefix_xor(m.quote) ^ carry;
            let outside = !in_string;
            if (m.control & in_string) | ((m.control | m.high) & outside) != 0 {
                break;
            }
            let (open, close) = (m.open & outside, m.close & outside);
            if !brackets.nested_through(open, close) {
                let walk = brackets.walk(&buf[p..p + BLOCK], 0, open, close);
                if walk.end.is_some() || walk.mismatch.is_some() {
                    break;
                }
                brackets = walk.brackets;
                let mut keys =
                    key_candidates(&m, in_string, prev_quote, self.head_seen) & walk.top_level;
                while keys != 0 {
                    let k = keys.trailing_zeros() as usize;
                    keys &= keys - 1;
                    self.head_key(buf, p, k, m.quote, 0);
                }
            }
            high |= m.high;
            carry = ((in_string as i64) >> 63) as u64;
            prev_quote = m.quote;
            p += BLOCK;
        }
        self.head.non_ascii |= high != 0;
        (self.pos, self.in_string, self.prev_quote) = (p, carry, prev_quote);
        self.brackets = brackets;
    }

    /// Scans the block of 64 bytes at `p`, whose masks are `m`.
    #[inline(always)]
    fn block(
        &mut self,
        buf: &[u8],
        p: usize,
        m: Masks,
        prefix_xor: &impl Fn(u64) -> u64,
        out: &mut dyn Out,
        stats: &mut ReadStats,
    ) -> Result<(), ObjectError> {
        let quote = m.quote & !self.escaped(m.backslash);
        let m = Masks { quote, ..m };
        let in_string = prefix_xor(quote) ^ self.in_string;
        self.in_string = ((in_string as i64) >> 63) as u64;
        let block = Block {
            p,
            m: &m,
            in_string,
        };
        let mut from = 0;
        while from < BLOCK {
            from = if self.mode == Mode::Structure {
                self.structure_run(buf, &block, from, out, stats)?
            } else {
                self.visit_run(buf, &block, from, out, stats)?
            };
        }
        self.prev_quote = quote;
        if m.backslash != 0 {
            self.last_backslash = p + BLOCK - m.backslash.leading_zeros() as usize;
        }
        if m.control != 0 {
            self.last_control = p + BLOCK - m.control.leading_zeros() as usize;
        }
        Ok(())
    }

    /// Visits the structural characters and string boundaries of the block from bit `from` (document, grammar
    /// and skipping modes). Returns BLOCK, or the bit after an element's `{` when it is followed by structure
    /// only (`Mode::Structure`).
    #[inline(always)]
    fn visit_run(
        &mut self,
        buf: &[u8],
        block: &Block<'_>,
        from: usize,
        out: &mut dyn Out,
        stats: &mut ReadStats,
    ) -> Result<usize, ObjectError> {
        let Block { p, m, in_string } = *block;
        let quote = m.quote;
        let mut visit = ((m.structural() & !in_string) | quote) & (u64::MAX << from);
        while visit != 0 {
            let k = visit.trailing_zeros() as usize;
            visit &= visit - 1;
            let i = p + k;
            if quote >> k & 1 == 1 {
                if in_string >> k & 1 == 1 {
                    self.string_opened(buf, i)?;
                    if self.mode == Mode::Element {
                        let done = self.compact_run(buf, p, k, m);
                        visit &= bits_above(done);
                    }
                } else {
                    // The end of a string that began in an earlier block (the others end in `compact_run`).
                    let inside = bits_below(k) & bits_from(self.str_start, p);
                    let content = Content {
                        escape: m.backslash & inside != 0 || self.last_backslash > self.str_start,
                        control: m.control & inside != 0 || self.last_control > self.str_start,
                    };
                    self.string_closed(buf, i, content);
                    if self.mode == Mode::Element {
                        let done = self.run_after(buf, p, k, m);
                        visit &= bits_above(done);
                    }
                }
            } else {
                self.structural(buf, i, out, stats)?;
                if self.mode == Mode::Structure {
                    return Ok(k + 1);
                }
            }
        }
        Ok(BLOCK)
    }

    /// Follows the structure of an element through the block from bit `from` ([`RecordCheck::Structure`]):
    /// brackets outside strings are counted in bulk while the element's top level is out of reach (nested
    /// values), else one by one; the top level's `:` after the keys that may be head fields are noted. Returns
    /// BLOCK, or the bit after the element's closing brace (the element was handed to `out`).
    #[inline(always)]
    fn structure_run(
        &mut self,
        buf: &[u8],
        block: &Block<'_>,
        from: usize,
        out: &mut dyn Out,
        stats: &mut ReadStats,
    ) -> Result<usize, ObjectError> {
        let Block { p, m, in_string } = *block;
        let outside = !in_string & bits_from_bit(from);
        let (open, close) = (m.open & outside, m.close & outside);
        let walk = self.brackets.walk(&buf[p..p + BLOCK], from, open, close);
        self.brackets = walk.brackets;
        if let Some((found, expected)) = walk.mismatch {
            self.flag(format!(
                "unexpected {:?} in a JSON record (expected {:?})",
                found as char, expected as char
            ));
        }
        let stop = walk.end.map_or(BLOCK, |e| e + 1);
        let top_level = walk.top_level;
        let element = bits_from_bit(from) & bits_below_or_all(stop);
        let stray = (m.control & in_string) | ((m.high | m.backslash | m.control) & !in_string);
        if stray & element != 0 {
            self.structure_faults(buf, p, m, in_string, element);
        }
        self.elem_escapes |= m.backslash & element != 0;
        let mut keys =
            key_candidates(m, in_string, self.prev_quote, self.head_seen) & top_level & element;
        while keys != 0 {
            let k = keys.trailing_zeros() as usize;
            keys &= keys - 1;
            self.head_key(buf, p, k, m.quote, m.backslash);
        }
        if walk.end.is_some() {
            self.end_structure_element(buf, p + stop - 1, out, stats)?;
        }
        Ok(stop)
    }

    /// The `:` at bit `k` of the block at `p` (unescaped quotes `quote`, backslashes `backslash`) may follow a
    /// head field's key: the value is noted now when it is a string that follows at once and ends in the block
    /// (the common case), else read at the element's end. A later occurrence of a key replaces an earlier one.
    #[inline(always)]
    fn head_key(&mut self, buf: &[u8], p: usize, k: usize, quote: u64, backslash: u64) {
        let colon = p + k - self.elem_start;
        let Some(f) = head_key_at(&buf[self.elem_start..], colon) else {
            return;
        };
        let f = f as usize;
        if self.head_seen >> f & 1 == 1 {
            return;
        }
        self.head_seen |= 1 << f;
        let opening = k + 1;
        if opening < BLOCK && quote >> opening & 1 == 1 {
            let later = quote & bits_above(opening);
            if later != 0 {
                let closing = later.trailing_zeros() as usize;
                let inside = bits_below(closing) & bits_above(opening);
                self.head.fields[f] = Some(colon + 2..p + closing - self.elem_start);
                self.head.escaped[f] = backslash & inside != 0;
                self.head_colon[f] = None;
                return;
            }
        }
        self.head_colon[f] = Some(colon);
    }

    /// Bytes that no JSON allows where they are (`element`: the element's bits of the block): raw control
    /// characters in strings, non-ASCII bytes, backslashes and control characters other than whitespace outside
    /// strings.
    #[cold]
    fn structure_faults(&mut self, buf: &[u8], p: usize, m: &Masks, in_string: u64, element: u64) {
        if m.control & in_string & element != 0 {
            return self.flag("unescaped control character in a string".into());
        }
        let outside = !in_string & element;
        if m.high & outside != 0 {
            return self.flag("non-ASCII byte outside a string".into());
        }
        if m.backslash & outside != 0 {
            return self.flag("unexpected '\\' outside a string".into());
        }
        let mut control = m.control & outside;
        while control != 0 {
            let k = control.trailing_zeros() as usize;
            control &= control - 1;
            if !matches!(buf[p + k], b'\t' | b'\n' | b'\r') {
                return self.flag(format!(
                    "control character 0x{:02x} outside a string",
                    buf[p + k]
                ));
            }
        }
    }

    /// Notes why the element (in `Mode::Structure`) is not valid JSON; the first reason is kept.
    fn flag(&mut self, why: String) {
        self.head.invalid.get_or_insert(why);
    }

    /// The element that ends at `i` (its closing brace) in `Mode::Structure`: checks its escape sequences, reads
    /// its head fields and hands it to `out`.
    fn end_structure_element(
        &mut self,
        buf: &[u8],
        i: usize,
        out: &mut dyn Out,
        stats: &mut ReadStats,
    ) -> Result<(), ObjectError> {
        let elem = &buf[self.elem_start..=i];
        if self.elem_escapes {
            if let Err(b) = check_escapes(elem) {
                self.flag(format!(
                    "invalid escape sequence in a string (byte 0x{b:02x})"
                ));
            }
        }
        for (f, colon) in self.head_colon.iter().enumerate() {
            if let Some(c) = colon {
                let value = string_after(elem, *c);
                self.head.escaped[f] = value.as_ref().is_some_and(|v| v.1);
                self.head.fields[f] = value.map(|v| v.0);
            }
        }
        self.last = i + 1;
        self.end_element(buf, i, out, stats)
    }

    /// Fast path for the compact `"key":"value","key":...` runs of an element, from the string that opened at
    /// bit `k`: while strings end in this block and are followed directly by `:` or `,` and another string, they
    /// are handled here without visiting each character. Returns the last bit handled (the caller drops the
    /// visits up to it).
    #[inline(always)]
    fn compact_run(&mut self, buf: &[u8], p: usize, k: usize, m: &Masks) -> usize {
        match self.close_in_block(buf, p, k, m) {
            Some(close) => self.run_after(buf, p, close, m),
            None => k,
        }
    }

    /// The string that opened at bit `open` ends in this block: handles its end and returns its bit.
    #[inline(always)]
    fn close_in_block(&mut self, buf: &[u8], p: usize, open: usize, m: &Masks) -> Option<usize> {
        let later = m.quote & bits_above(open);
        if later == 0 {
            return None;
        }
        let close = later.trailing_zeros() as usize;
        let inside = bits_below(close) & bits_above(open);
        let content = Content {
            escape: m.backslash & inside != 0,
            control: m.control & inside != 0,
        };
        self.string_closed(buf, p + close, content);
        Some(close)
    }

    /// The compact run after a string of the element that ended at bit `close` (see [`Self::compact_run`]).
    #[inline(always)]
    fn run_after(&mut self, buf: &[u8], p: usize, mut close: usize, m: &Masks) -> usize {
        loop {
            if self.mode != Mode::Element || close + 2 >= BLOCK {
                return close;
            }
            match (self.expect, buf[p + close + 1]) {
                (Expect::Colon, b':') => self.expect = Expect::Value,
                (Expect::Next, b',') => {
                    self.expect = if self.stack.last() == Some(&b'{') {
                        Expect::Key
                    } else {
                        Expect::Value
                    }
                }
                _ => return close,
            }
            self.last = p + close + 2;
            if buf[p + close + 2] != b'"' {
                return close + 1;
            }
            // Not escaped: it follows `:` or `,`.
            let open = close + 2;
            self.open_element_string(buf, p + open);
            if self.mode != Mode::Element {
                return open;
            }
            match self.close_in_block(buf, p, open, m) {
                Some(c) => close = c,
                None => return open,
            }
        }
    }

    /// The bytes of the block that a backslash escapes (a backslash escapes the next byte unless it is escaped
    /// itself). Backslashes are rare: they are visited one by one.
    #[inline]
    fn escaped(&mut self, backslash: u64) -> u64 {
        if backslash == 0 && !self.escape_next {
            return 0;
        }
        let mut escaped = 0u64;
        let mut left = backslash;
        if self.escape_next {
            escaped = 1;
            left &= !1;
        }
        self.escape_next = false;
        while left != 0 {
            let k = left.trailing_zeros();
            left &= left - 1;
            if k == 63 {
                self.escape_next = true;
                break;
            }
            escaped |= 1 << (k + 1);
            left &= !(1 << (k + 1));
        }
        escaped
    }

    /// The earliest position the buffer must keep: the current element, or a top-level string short enough to
    /// be the `Records` key.
    fn keep_from(&mut self, buf: &[u8]) -> usize {
        match self.mode {
            Mode::Element | Mode::Skipping | Mode::Structure => self.elem_start.min(self.pos),
            Mode::Document => {
                if self.in_array
                    && self.depth == 2
                    && !blank(&buf[self.last.min(self.pos)..self.pos])
                {
                    // Checked at the next visited character; keep the evidence.
                    return self.last.min(self.pos);
                }
                self.last = self.last.max(self.pos);
                match self.key_start {
                    Some(k) if self.pos - k <= KEY_KEEP => k,
                    Some(_) => {
                        self.key_start = None;
                        self.pos
                    }
                    None => self.pos,
                }
            }
        }
    }

    /// The buffer dropped its first `n` bytes.
    fn shift(&mut self, n: usize) {
        self.pos -= n;
        self.last = self.last.saturating_sub(n);
        self.last_backslash = self.last_backslash.saturating_sub(n);
        self.last_control = self.last_control.saturating_sub(n);
        self.elem_start = self.elem_start.saturating_sub(n);
        self.str_start = self.str_start.saturating_sub(n);
        self.key_start = self.key_start.map(|k| k - n);
    }

    /// The document ended: every bracket closed, no string or element open.
    fn complete(&self) -> bool {
        self.depth == 0 && self.in_string == 0 && self.mode == Mode::Document
    }

    fn truncated(&self) -> ObjectError {
        ObjectError::Corrupt(format!(
            "truncated JSON document after {} record(s)",
            self.index
        ))
    }

    fn not_an_object(&self) -> ObjectError {
        ObjectError::Corrupt(format!("Records element {} is not an object", self.index))
    }

    #[inline(always)]
    fn string_opened(&mut self, buf: &[u8], i: usize) -> Result<(), ObjectError> {
        match self.mode {
            Mode::Element => self.open_element_string(buf, i),
            Mode::Document => {
                if self.in_array && self.depth == 2 {
                    return Err(self.not_an_object());
                }
                if self.depth == 1 && !self.in_array {
                    self.key_start = Some(i + 1);
                    self.key_colon = false;
                }
            }
            Mode::Skipping | Mode::Structure => {}
        }
        Ok(())
    }

    /// A string of the element opens at `i`.
    #[inline(always)]
    fn open_element_string(&mut self, buf: &[u8], i: usize) {
        if self.last != i && !blank(&buf[self.last..i]) {
            return self.invalid(format!(
                "unexpected {:?} in a JSON record",
                String::from_utf8_lossy(buf[self.last..i].trim_ascii())
            ));
        }
        self.str_start = i + 1;
        self.str_is_top_key = false;
        match self.expect {
            Expect::Value | Expect::ValueOrEnd => {}
            Expect::Key | Expect::KeyOrEnd => {
                self.want = None;
                self.str_is_top_key = self.stack.len() == 1;
            }
            _ => self.invalid("unexpected '\"' in a JSON record".into()),
        }
    }

    #[inline(always)]
    fn string_closed(&mut self, buf: &[u8], i: usize, content: Content) {
        self.last = i + 1;
        match self.mode {
            Mode::Element => self.element_string(buf, i, content),
            Mode::Document => {
                if let Some(k) = self.key_start.take() {
                    self.key_is_records = &buf[k..i] == b"Records";
                }
            }
            Mode::Skipping | Mode::Structure => {}
        }
    }

    /// A string of the element ends at `i` (its closing quote).
    #[inline(always)]
    fn element_string(&mut self, buf: &[u8], i: usize, content: Content) {
        let has_escape = content.escape;
        if content.control {
            return self.invalid("unescaped control character in a string".into());
        }
        let content = self.str_start..i;
        if has_escape {
            if let Err(b) = check_escapes(&buf[content.clone()]) {
                return self.invalid(format!(
                    "invalid escape sequence in a string (byte 0x{b:02x})"
                ));
            }
        }
        if matches!(self.expect, Expect::Key | Expect::KeyOrEnd) {
            self.expect = Expect::Colon;
            if self.str_is_top_key {
                // The first occurrence of a key counts, even when its value is not a string.
                self.want = HeadField::of_key(&buf[content])
                    .filter(|&f| self.head_seen >> f as u8 & 1 == 0);
                if let Some(f) = self.want {
                    self.head_seen |= 1 << f as u8;
                }
            }
        } else {
            self.expect = Expect::Next;
            if let Some(f) = self.want.take() {
                if self.stack.len() == 1 {
                    let e = self.elem_start;
                    self.head.fields[f as usize] = Some(content.start - e..content.end - e);
                    self.head.escaped[f as usize] = has_escape;
                }
            }
        }
    }

    /// A structural character outside strings at `i`.
    #[inline(always)]
    fn structural(
        &mut self,
        buf: &[u8],
        i: usize,
        out: &mut dyn Out,
        stats: &mut ReadStats,
    ) -> Result<(), ObjectError> {
        let c = buf[i];
        let ended = match self.mode {
            Mode::Element => self.element_structural(buf, i, c),
            Mode::Skipping => self.skipping_structural(c),
            Mode::Document => return self.document_structural(buf, i, c),
            Mode::Structure => unreachable!("elements followed by structure are not visited"),
        };
        self.last = i + 1;
        if ended {
            self.end_element(buf, i, out, stats)?;
        }
        Ok(())
    }

    /// Hands the element that ends at `i` to `out`; back to the document.
    fn end_element(
        &mut self,
        buf: &[u8],
        i: usize,
        out: &mut dyn Out,
        stats: &mut ReadStats,
    ) -> Result<(), ObjectError> {
        self.mode = Mode::Document;
        stats.units += 1;
        out.record(&buf[self.elem_start..=i], &self.head, self.index)?;
        self.index += 1;
        Ok(())
    }

    #[inline(always)]
    fn document_structural(&mut self, buf: &[u8], i: usize, c: u8) -> Result<(), ObjectError> {
        if self.in_array && self.depth == 2 && !blank(&buf[self.last..i]) {
            return Err(self.not_an_object());
        }
        self.last = i + 1;
        match c {
            b':' if self.depth == 1 => self.key_colon = true,
            b'{' | b'[' => {
                if self.in_array && self.depth == 2 {
                    if c != b'{' {
                        return Err(self.not_an_object());
                    }
                    self.start_element(i);
                    return Ok(());
                }
                self.depth += 1;
                if self.depth == 2 && c == b'[' && self.key_colon && self.key_is_records {
                    self.in_array = true;
                    self.seen_records = true;
                }
                self.key_is_records = false;
            }
            b'}' | b']' => {
                if self.depth == 0 {
                    return Err(ObjectError::Corrupt("unbalanced JSON".into()));
                }
                self.depth -= 1;
                if self.in_array && self.depth == 1 {
                    self.in_array = false;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn start_element(&mut self, i: usize) {
        self.elem_start = i;
        match self.check {
            RecordCheck::Grammar => {
                self.mode = Mode::Element;
                self.stack.clear();
                self.stack.push(b'{');
                self.expect = Expect::KeyOrEnd;
                self.want = None;
                self.head_seen = 0;
            }
            RecordCheck::Structure => {
                self.mode = Mode::Structure;
                self.brackets.depth = 1;
                self.head_colon = [None; 4];
                self.head_seen = 0;
                self.elem_escapes = false;
            }
        }
        self.head = RecordHead {
            non_ascii: self.block_high & bits_from(i, self.block_pos) != 0,
            ..RecordHead::default()
        };
    }

    /// Grammar of one structural character of the element (and of the scalar before it); true when it closes
    /// the element.
    #[inline(always)]
    fn element_structural(&mut self, buf: &[u8], i: usize, c: u8) -> bool {
        let gap = &buf[self.last..i];
        if !gap.is_empty() {
            let token = gap.trim_ascii();
            if !token.is_empty() {
                if !matches!(self.expect, Expect::Value | Expect::ValueOrEnd) || !valid_token(token)
                {
                    let t = String::from_utf8_lossy(token).into_owned();
                    self.invalid(format!("invalid JSON value {t:?}"));
                    return self.skipping_structural(c);
                }
                self.expect = Expect::Next;
            }
        }
        let top = self.stack.last().copied();
        match (self.expect, c) {
            (Expect::Value | Expect::ValueOrEnd, b'{') => {
                self.stack.push(b'{');
                self.expect = Expect::KeyOrEnd;
            }
            (Expect::Value | Expect::ValueOrEnd, b'[') => {
                self.stack.push(b'[');
                self.expect = Expect::ValueOrEnd;
            }
            (Expect::Colon, b':') => self.expect = Expect::Value,
            (Expect::Next, b',') => {
                self.expect = if top == Some(b'{') {
                    Expect::Key
                } else {
                    Expect::Value
                };
            }
            (Expect::Next | Expect::KeyOrEnd, b'}') if top == Some(b'{') => {
                self.stack.pop();
                self.expect = Expect::Next;
                return self.stack.is_empty();
            }
            (Expect::Next | Expect::ValueOrEnd, b']') if top == Some(b'[') => {
                self.stack.pop();
                self.expect = Expect::Next;
            }
            _ => {
                self.invalid(format!("unexpected {:?} in a JSON record", c as char));
                return self.skipping_structural(c);
            }
        }
        false
    }

    /// Marks the element invalid; from then on only brackets are counted, starting from those the grammar had
    /// seen open.
    fn invalid(&mut self, why: String) {
        if self.mode == Mode::Element {
            self.head.invalid = Some(why);
            self.mode = Mode::Skipping;
            self.skip_depth = self.stack.len();
        }
    }

    /// One structural character of an invalid element; true when it closes the element.
    fn skipping_structural(&mut self, c: u8) -> bool {
        match c {
            b'{' | b'[' => self.skip_depth += 1,
            b'}' | b']' => {
                self.skip_depth -= 1;
                return self.skip_depth == 0;
            }
            _ => {}
        }
        false
    }
}

/// The masks of one lane in [`Masks::add_lane`]'s order, from the lane's compares with a byte (`eq`), with a byte
/// after folding `[ ]` onto `{ }` (`folded_eq`), its high bits and its control bytes.
#[inline(always)]
fn lane_masks(
    eq: impl Fn(u8) -> u64,
    folded_eq: impl Fn(u8) -> u64,
    high: u64,
    control: u64,
) -> [u64; 9] {
    [
        eq(b'"'),
        eq(b'\\'),
        folded_eq(b'{'),
        folded_eq(b'}'),
        eq(b':'),
        eq(b','),
        high,
        control,
        eq(b' '),
    ]
}

/// The masks of a block, 16 bytes at a time with SSE2 (part of every x86-64 CPU).
#[cfg(target_arch = "x86_64")]
#[inline]
fn masks(block: &[u8; BLOCK]) -> Masks {
    use std::arch::x86_64::*;
    let mut m = Masks::default();
    for lane in 0..BLOCK / 16 {
        // SAFETY: SSE2 is always available on x86-64; the load reads 16 bytes inside `block` (unaligned load).
        let bits = unsafe {
            let v = _mm_loadu_si128(block.as_ptr().add(lane * 16).cast::<__m128i>());
            let bits = |x: __m128i| u64::from(_mm_movemask_epi8(x) as u16);
            let eq = |c: u8| bits(_mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8)));
            // `[` and `]` are `{` and `}` without bit 5.
            let folded = _mm_or_si128(v, _mm_set1_epi8(0x20));
            let folded_eq = |c: u8| bits(_mm_cmpeq_epi8(folded, _mm_set1_epi8(c as i8)));
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
            lane_masks(eq, folded_eq, bits(v), bits(control))
        };
        m.add_lane(lane * 16, bits);
    }
    m
}

/// The masks of a block, 32 bytes at a time with AVX2.
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn masks_avx2(block: &[u8; BLOCK]) -> Masks {
    use std::arch::x86_64::*;
    let mut m = Masks::default();
    for half in 0..2 {
        let v = _mm256_loadu_si256(block.as_ptr().add(half * 32).cast::<__m256i>());
        let bits = |x: __m256i| u64::from(_mm256_movemask_epi8(x) as u32);
        let eq = |c: u8| bits(_mm256_cmpeq_epi8(v, _mm256_set1_epi8(c as i8)));
        let folded = _mm256_or_si256(v, _mm256_set1_epi8(0x20));
        let folded_eq = |c: u8| bits(_mm256_cmpeq_epi8(folded, _mm256_set1_epi8(c as i8)));
        let control = _mm256_cmpeq_epi8(_mm256_min_epu8(v, _mm256_set1_epi8(0x1f)), v);
        m.add_lane(half * 32, lane_masks(eq, folded_eq, bits(v), bits(control)));
    }
    m
}

/// The masks of a block with AVX-512: one compare per mask, straight into a mask register.
///
/// # Safety
/// The CPU must have AVX-512 F and BW.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn masks_avx512(block: &[u8; BLOCK]) -> Masks {
    use std::arch::x86_64::*;
    let v = _mm512_loadu_si512(block.as_ptr().cast());
    let eq = |c: u8| _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(c as i8));
    let folded = _mm512_or_si512(v, _mm512_set1_epi8(0x20));
    let folded_eq = |c: u8| _mm512_cmpeq_epi8_mask(folded, _mm512_set1_epi8(c as i8));
    Masks {
        quote: eq(b'"'),
        backslash: eq(b'\\'),
        open: folded_eq(b'{'),
        close: folded_eq(b'}'),
        colon: eq(b':'),
        comma: eq(b','),
        high: _mm512_movepi8_mask(v),
        control: _mm512_cmplt_epu8_mask(v, _mm512_set1_epi8(0x20)),
        space: eq(b' '),
    }
}

/// The masks of a block, byte by byte (other architectures, and the reference of the tests).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn masks_scalar(block: &[u8; BLOCK]) -> Masks {
    let mut m = Masks::default();
    for (k, &b) in block.iter().enumerate() {
        let bit = 1u64 << k;
        if b >= 0x80 {
            m.high |= bit;
        }
        if b < 0x20 {
            m.control |= bit;
        }
        let mask = match b {
            b'"' => &mut m.quote,
            b'\\' => &mut m.backslash,
            b'{' | b'[' => &mut m.open,
            b'}' | b']' => &mut m.close,
            b':' => &mut m.colon,
            b',' => &mut m.comma,
            b' ' => &mut m.space,
            _ => continue,
        };
        *mask |= bit;
    }
    m
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn masks(block: &[u8; BLOCK]) -> Masks {
    masks_scalar(block)
}

/// Bit k set when an odd number of the bits 0..=k of `x` are set: the bytes from an opening quote up to (not
/// including) its closing quote.
#[inline]
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// [`prefix_xor`] in one carry-less multiplication by all ones.
///
/// # Safety
/// The CPU must have PCLMULQDQ.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn prefix_xor_clmul(x: u64) -> u64 {
    use std::arch::x86_64::*;
    let product = _mm_clmulepi64_si128(_mm_set_epi64x(0, x as i64), _mm_set1_epi8(-1), 0);
    _mm_cvtsi128_si64(product) as u64
}

/// The bits below `k`.
#[inline]
fn bits_below(k: usize) -> u64 {
    (1u64 << k) - 1
}

/// The bits above bit `k` (none for the last bit).
#[inline]
fn bits_above(k: usize) -> u64 {
    (u64::MAX << k) << 1
}

/// The bits of the block at `p` from position `from` on (all of them when `from` lies before the block).
#[inline]
fn bits_from(from: usize, p: usize) -> u64 {
    match from.checked_sub(p) {
        None | Some(0) => u64::MAX,
        Some(k) if k >= BLOCK => 0,
        Some(k) => u64::MAX << k,
    }
}

/// The bits from bit `k` on (none for `k` = 64).
#[inline]
fn bits_from_bit(k: usize) -> u64 {
    u64::MAX.checked_shl(k as u32).unwrap_or(0)
}

/// The bits below `k`; all of them for `k` = 64.
#[inline]
fn bits_below_or_all(k: usize) -> u64 {
    if k >= BLOCK {
        u64::MAX
    } else {
        bits_below(k)
    }
}

/// The `:` of a block (masks `m`) that may follow the key of a head field not `seen` yet (bit `1 << field`),
/// outside strings: in compact JSON only those right after a quote whose opening quote lies 9 (`eventTime`,
/// `awsRegion`), 11 (`eventSource`) or 18 (`recipientAccountId`) bytes before it (`prev_quote`: the quotes of the
/// previous block); all of them when the block has whitespace outside strings.
#[inline(always)]
fn key_candidates(m: &Masks, in_string: u64, prev_quote: u64, seen: u8) -> u64 {
    const TIME_OR_REGION: u8 = 1 << HeadField::EventTime as u8 | 1 << HeadField::AwsRegion as u8;
    const SOURCE: u8 = 1 << HeadField::EventSource as u8;
    const ACCOUNT: u8 = 1 << HeadField::RecipientAccountId as u8;
    let colons = m.colon & !in_string;
    if colons == 0 || seen == 0xf {
        return 0;
    }
    if (m.space | m.control) & !in_string != 0 {
        return colons;
    }
    let quote_before = |d: u32| (m.quote << d) | (prev_quote >> (64 - d));
    let missing = |fields: u8| if seen & fields != fields { u64::MAX } else { 0 };
    let lengths = quote_before(11) & missing(TIME_OR_REGION)
        | quote_before(13) & missing(SOURCE)
        | quote_before(20) & missing(ACCOUNT);
    // A colon at bit 0 is always looked at (the whitespace before it may lie in the previous block).
    colons & (quote_before(1) & lengths | 1)
}

/// The head field whose key comes before the `:` at `colon` (outside strings) of `elem`, if any.
#[inline(always)]
fn head_key_at(elem: &[u8], colon: usize) -> Option<HeadField> {
    let mut end = colon;
    while end > 0 && elem[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    let close = end.checked_sub(1).filter(|&c| elem[c] == b'"')?;
    // The last 8 bytes of the key tell which head field it may be (one compare for most keys).
    let last8 = u64::from_le_bytes(elem.get(close.checked_sub(8)?..close)?.try_into().ok()?);
    const fn word(s: &[u8; 8]) -> u64 {
        u64::from_le_bytes(*s)
    }
    const TIME: u64 = word(b"ventTime");
    const SOURCE: u64 = word(b"ntSource");
    const ACCOUNT: u64 = word(b"ccountId");
    const REGION: u64 = word(b"wsRegion");
    let (f, quoted) = match last8 {
        TIME => (
            HeadField::EventTime,
            key_before(elem, close, b"\"eventTime"),
        ),
        SOURCE => (
            HeadField::EventSource,
            key_before(elem, close, b"\"eventSource"),
        ),
        ACCOUNT => (
            HeadField::RecipientAccountId,
            key_before(elem, close, b"\"recipientAccountId"),
        ),
        REGION => (
            HeadField::AwsRegion,
            key_before(elem, close, b"\"awsRegion"),
        ),
        _ => return None,
    };
    quoted.then_some(f)
}

/// `elem` holds `quoted_key` (opening quote and key) before `close`, and that quote is not escaped.
#[inline(always)]
fn key_before<const N: usize>(elem: &[u8], close: usize, quoted_key: &[u8; N]) -> bool {
    let Some(open) = close.checked_sub(N) else {
        return false;
    };
    // A comparison of arrays: inlined, no memcmp call.
    let quoted = <&[u8; N]>::try_from(&elem[open..close]).is_ok_and(|k| k == quoted_key);
    let backslashes = || {
        elem[..open]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count()
    };
    quoted && backslashes() % 2 == 0
}

/// The string value after the `:` at `colon` of `elem` (its content's range, whether it has an escape sequence);
/// None when the value is not a string.
fn string_after(elem: &[u8], colon: usize) -> Option<(Range<usize>, bool)> {
    let at = colon
        + 1
        + elem[colon + 1..]
            .iter()
            .position(|b| !b.is_ascii_whitespace())?;
    if elem[at] != b'"' {
        return None;
    }
    // Head field values are short: a plain loop beats a memchr call.
    let start = at + 1;
    let mut escaped = false;
    let mut i = start;
    while i < elem.len() {
        match elem[i] {
            b'"' => return Some((start..i, escaped)),
            b'\\' => {
                escaped = true;
                i += 2;
            }
            _ => i += 1,
        }
    }
    None
}

fn blank(s: &[u8]) -> bool {
    s.iter().all(u8::is_ascii_whitespace)
}

/// Checks the escape sequences of a string's content; Err(the byte after the backslash) for an invalid one.
fn check_escapes(s: &[u8]) -> Result<(), u8> {
    let mut i = 0;
    while let Some(p) = memchr::memchr(b'\\', &s[i..]) {
        let at = i + p + 1;
        match s.get(at) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i = at + 1,
            Some(b'u') => {
                let hex = s.get(at + 1..at + 5).ok_or(b'u')?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(*hex.iter().find(|b| !b.is_ascii_hexdigit()).unwrap_or(&b'u'));
                }
                i = at + 5;
            }
            Some(&b) => return Err(b),
            None => return Err(b'\\'),
        }
    }
    Ok(())
}

/// `true`, `false`, `null` or a JSON number.
fn valid_token(t: &[u8]) -> bool {
    if matches!(t, b"true" | b"false" | b"null") {
        return true;
    }
    let t = t.strip_prefix(b"-").unwrap_or(t);
    let int_len = t.iter().take_while(|b| b.is_ascii_digit()).count();
    if int_len == 0 || (int_len > 1 && t[0] == b'0') {
        return false;
    }
    let mut rest = &t[int_len..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    if let Some(exp) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let exp = exp
            .strip_prefix(b"+")
            .or_else(|| exp.strip_prefix(b"-"))
            .unwrap_or(exp);
        let n = exp.iter().take_while(|b| b.is_ascii_digit()).count();
        return n > 0 && n == exp.len();
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::io::{self, BufReader, Read};

    #[derive(Default, Debug)]
    struct Collect {
        records: Vec<(String, RecordHead)>,
    }
    impl Out for Collect {
        fn record(&mut self, bytes: &[u8], head: &RecordHead, _i: u64) -> Result<(), ObjectError> {
            self.records
                .push((String::from_utf8(bytes.to_vec()).unwrap(), head.clone()));
            Ok(())
        }
        fn line(&mut self, _text: &str, _n: u64) -> Result<(), ObjectError> {
            unreachable!("no lines in a Records document")
        }
    }

    /// A reader that returns at most `n` bytes per read, to cut records across chunk boundaries.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Splits `doc` read `step` bytes at a time with every kernel this CPU runs and with both checks. The
    /// kernels must agree; the structure check must cut the same records as the grammar check, judge each one as
    /// [`structure_fault`] does (so only records the grammar check rejects too), and find the same head fields in
    /// the valid ones. Returns the grammar check's result.
    fn split(doc: &[u8], step: usize) -> Result<Collect, ObjectError> {
        let grammar = split_checked(doc, step, RecordCheck::Grammar);
        let structure = split_checked(doc, step, RecordCheck::Structure);
        let context = || format!("step {step}, doc {}", String::from_utf8_lossy(doc));
        match (&grammar, &structure) {
            (Err(g), Err(s)) => assert_eq!(g.to_string(), s.to_string(), "{}", context()),
            (Ok(g), Ok(s)) => {
                assert_eq!(g.records.len(), s.records.len(), "{}", context());
                for ((raw, g), (s_raw, s)) in g.records.iter().zip(&s.records) {
                    assert_eq!(raw, s_raw, "{}", context());
                    assert_eq!(g.non_ascii, s.non_ascii, "{raw}");
                    assert_eq!(
                        s.invalid.is_some(),
                        structure_fault(raw.as_bytes()),
                        "{raw}: {:?}",
                        s.invalid
                    );
                    assert!(g.invalid.is_some() || s.invalid.is_none(), "{raw}");
                    if g.invalid.is_none() {
                        for f in HeadField::ALL {
                            let bytes = raw.as_bytes();
                            assert_eq!(g.get(bytes, f), s.get(bytes, f), "{f:?} of {raw}");
                        }
                    }
                }
            }
            _ => panic!("{grammar:?} / {structure:?}: {}", context()),
        }
        grammar
    }

    /// [`split`] with one check, every kernel.
    fn split_checked(doc: &[u8], step: usize, check: RecordCheck) -> Result<Collect, ObjectError> {
        let run = |vector| {
            let mut c = Collect::default();
            let mut r = BufReader::with_capacity(step.max(1), Trickle(doc, step));
            split_records_up_to(&mut r, &mut c, MAX_RECORD, vector, check).map(|_| c)
        };
        let mut kernels = Vector::available().into_iter();
        let first = kernels.next().expect("a kernel");
        let result = run(first);
        for other in kernels {
            assert_eq!(
                format!("{:?}", run(other)),
                format!("{result:?}"),
                "{other:?} and {first:?} differ ({check:?})"
            );
        }
        result
    }

    /// The rules of [`RecordCheck::Structure`], byte by byte: true when the element `raw` breaks one.
    fn structure_fault(raw: &[u8]) -> bool {
        let (mut in_string, mut escape) = (false, false);
        let (mut depth, mut top_open) = (0u32, 0u8);
        for (i, &b) in raw.iter().enumerate() {
            if escape {
                escape = false;
                let hex4 = || {
                    raw.get(i + 1..i + 5)
                        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
                };
                match b {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' if hex4() => {}
                    _ => return true,
                }
            } else if in_string {
                match b {
                    b'\\' => escape = true,
                    b'"' => in_string = false,
                    0..0x20 => return true,
                    _ => {}
                }
            } else {
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => {
                        if depth == 1 {
                            top_open = b;
                        }
                        depth += 1;
                    }
                    b'}' | b']' => {
                        depth -= 1;
                        let expected = match depth {
                            0 => b'}',
                            1 => top_open + 2,
                            _ => b,
                        };
                        if b != expected {
                            return true;
                        }
                    }
                    b'\t' | b'\n' | b'\r' => {}
                    b'\\' | 0..0x20 | 0x80.. => return true,
                    _ => {}
                }
            }
        }
        false
    }

    /// xorshift64*: deterministic random JSON without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn string(&mut self) -> String {
            const PARTS: &[&str] = &[
                "a",
                "Records",
                "\"",
                "\\",
                "}",
                "]",
                "{",
                "[",
                ",",
                ":",
                "é",
                "日本",
                "\n",
                "\u{1}",
                "eventTime",
                " ",
            ];
            (0..self.below(6))
                .map(|_| PARTS[self.below(PARTS.len() as u64) as usize])
                .collect()
        }
        fn value(&mut self, depth: u32) -> Value {
            match self.below(if depth > 3 { 5 } else { 7 }) {
                0 => Value::Null,
                1 => json!(self.below(2) == 0),
                2 => json!(self.next() as i64 >> self.below(60)),
                3 => json!((self.next() % 100_000) as f64 / 8.0 - 5000.0),
                4 => json!(self.string()),
                5 => Value::Array((0..self.below(4)).map(|_| self.value(depth + 1)).collect()),
                _ => self.object(depth + 1),
            }
        }
        fn object(&mut self, depth: u32) -> Value {
            let mut m = serde_json::Map::new();
            for _ in 0..self.below(5) {
                let k = match self.below(7) {
                    0 => "eventTime".to_owned(),
                    1 => "eventSource".to_owned(),
                    2 => "awsRegion".to_owned(),
                    3 => "recipientAccountId".to_owned(),
                    _ => self.string(),
                };
                let v = self.value(depth);
                m.insert(k, v);
            }
            Value::Object(m)
        }
    }

    #[test]
    fn random_records_match_serde_json_at_every_cut() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..200 {
            let records: Vec<Value> = (0..rng.below(4)).map(|_| rng.object(0)).collect();
            let doc = json!({"before": rng.value(0), "Records": records, "after": rng.value(0)});
            let text = if round % 2 == 0 {
                serde_json::to_string(&doc).unwrap()
            } else {
                serde_json::to_string_pretty(&doc).unwrap()
            };
            for step in [1, 2, 3, 7, 64, 1 << 16] {
                let got = split(text.as_bytes(), step).unwrap();
                assert_eq!(
                    got.records.len(),
                    records.len(),
                    "round {round} step {step}: {text}"
                );
                for ((raw, head), want) in got.records.iter().zip(&records) {
                    assert_eq!(head.invalid, None, "{raw}");
                    assert!(head.non_ascii || raw.is_ascii(), "{raw}");
                    assert_eq!(head.text(raw.as_bytes()), raw.as_str());
                    assert_eq!(&serde_json::from_str::<Value>(raw).unwrap(), want);
                    for (f, name) in [
                        (HeadField::EventTime, "eventTime"),
                        (HeadField::EventSource, "eventSource"),
                        (HeadField::AwsRegion, "awsRegion"),
                        (HeadField::RecipientAccountId, "recipientAccountId"),
                    ] {
                        assert_eq!(
                            head.get(raw.as_bytes(), f).as_deref(),
                            want.get(name).and_then(Value::as_str),
                            "{name} of {raw}"
                        );
                    }
                }
            }
        }
    }

    /// Random documents with a few bytes changed, removed or added: the splitter never panics, and a record it
    /// calls valid is exactly a record serde_json parses (both ways).
    #[test]
    fn mutated_documents_agree_with_serde_json() {
        const BYTES: &[u8] = b"{}[]:,\"\\ a1-.etnu0E\t\n\x01";
        let mut rng = Rng(0x5DEE_CE66_D1CE_4E5B);
        let (mut errors, mut records, mut invalid) = (0, 0, 0);
        for round in 0..3000 {
            let recs: Vec<Value> = (0..1 + rng.below(3)).map(|_| rng.object(0)).collect();
            let doc = json!({"Records": recs});
            let text = if round % 2 == 0 {
                serde_json::to_string(&doc).unwrap()
            } else {
                serde_json::to_string_pretty(&doc).unwrap()
            };
            // ASCII documents (a removed byte must not break a UTF-8 sequence).
            let mut bytes: Vec<u8> = text.bytes().filter(u8::is_ascii).collect();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(bytes.len() as u64) as usize;
                let b = BYTES[rng.below(BYTES.len() as u64) as usize];
                match rng.below(3) {
                    0 => bytes[at] = b,
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, b),
                }
            }
            let step = [1, 7, 64, 1 << 16][rng.below(4) as usize];
            match split(&bytes, step) {
                Err(_) => errors += 1,
                Ok(got) => {
                    for (raw, head) in &got.records {
                        records += 1;
                        let parsed = serde_json::from_str::<Value>(raw);
                        if parsed
                            .as_ref()
                            .is_err_and(|e| e.to_string().starts_with("number out of range"))
                        {
                            continue; // valid JSON that serde_json's f64 cannot hold
                        }
                        assert_eq!(
                            head.invalid.is_none(),
                            parsed.is_ok(),
                            "{raw}: {:?} / {:?}\ndoc: {}",
                            head.invalid,
                            parsed.err(),
                            String::from_utf8_lossy(&bytes)
                        );
                        assert!(head.non_ascii || raw.is_ascii());
                        invalid += usize::from(head.invalid.is_some());
                    }
                }
            }
        }
        // The mutations reach every outcome.
        assert!(
            errors > 100 && records > 1000 && invalid > 100,
            "{errors} {records} {invalid}"
        );
    }

    #[test]
    fn invalid_records_are_flagged_alone() {
        let bad = [
            r#"{"a":tru}"#,
            r#"{"a" 1}"#,
            r#"{"a":1,}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12g4"}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{,}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a":{"b"}}"#,
            r#"{1:2}"#,
            r#"{"a":{"b":"\x","c":[{}]},"d":[1]}"#,
            r#"{"a":[{"b":tru,"c":{"d":[]}}],"e":{}}"#,
            r#"{"a":{"b" {"c":1}},"d":2}"#,
            "{\"a\":\"raw\nnewline\"}",
            "{\"a\":[\"tab\tinside\"]}",
        ];
        for b in bad {
            assert!(serde_json::from_str::<Value>(b).is_err(), "{b}");
            let doc = format!(
                r#"{{"Records":[{{"x":1}},{b},{{"eventSource":"s3\u002eamazonaws.com"}}]}}"#
            );
            for step in [1, 5, 4096] {
                let got = split(doc.as_bytes(), step).unwrap();
                let invalid: Vec<bool> = got
                    .records
                    .iter()
                    .map(|(_, h)| h.invalid.is_some())
                    .collect();
                assert_eq!(invalid, [false, true, false], "{b} step {step}");
                let (raw, head) = &got.records[2];
                assert_eq!(
                    head.get(raw.as_bytes(), HeadField::EventSource).as_deref(),
                    Some("s3.amazonaws.com")
                );
            }
        }
    }

    #[test]
    fn vector_masks_match_the_scalar_ones() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        const ALPHABET: &[u8] = b"\"\\{}[]:, aZ0\n\x7b\x5b\xdb\xfb\x02\xa2";
        for _ in 0..2000 {
            let mut block = [0u8; BLOCK];
            for b in block.iter_mut() {
                *b = ALPHABET[rng.below(ALPHABET.len() as u64) as usize];
            }
            let scalar = masks_scalar(&block);
            assert_eq!(masks(&block), scalar, "{block:?}");
            #[cfg(target_arch = "x86_64")]
            {
                use std::arch::is_x86_feature_detected as has;
                if has!("avx2") {
                    // SAFETY: the CPU has AVX2.
                    assert_eq!(unsafe { masks_avx2(&block) }, scalar, "{block:?}");
                }
                if has!("avx512f") && has!("avx512bw") {
                    // SAFETY: the CPU has AVX-512 F and BW.
                    assert_eq!(unsafe { masks_avx512(&block) }, scalar, "{block:?}");
                }
            }
        }
    }

    #[test]
    fn carry_less_prefix_xor_matches_the_shifts() {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("pclmulqdq") {
            let mut rng = Rng(0x0123_4567_89AB_CDEF);
            for x in [0, 1, u64::MAX, 1 << 63, 0x8000_0000_0000_0001] {
                // SAFETY: the CPU has PCLMULQDQ.
                assert_eq!(unsafe { prefix_xor_clmul(x) }, prefix_xor(x), "{x:#x}");
            }
            for _ in 0..10_000 {
                let x = rng.next();
                // SAFETY: the CPU has PCLMULQDQ.
                assert_eq!(unsafe { prefix_xor_clmul(x) }, prefix_xor(x), "{x:#x}");
            }
        }
    }

    /// Runs of backslashes before a quote, at every position around block boundaries: an even run leaves the
    /// quote closing the string, an odd one escapes it.
    #[test]
    fn backslash_runs_across_blocks() {
        for pad in 0..BLOCK {
            for run in 1..=70 {
                let backslashes = "\\".repeat(run);
                let value = if run % 2 == 0 {
                    backslashes.clone()
                } else {
                    format!("{backslashes}\"x")
                };
                let doc = format!(
                    "{}{{\"Records\":[{{\"eventSource\":\"{value}\",\"n\":1}},{{\"a\":[]}}]}}",
                    " ".repeat(pad)
                );
                let want: Value = serde_json::from_str(&doc).unwrap();
                let got = split(doc.as_bytes(), 1 << 16).unwrap();
                assert_eq!(got.records.len(), 2, "pad {pad} run {run}");
                let (raw, head) = &got.records[0];
                assert_eq!(head.invalid, None, "pad {pad} run {run}");
                assert_eq!(
                    head.get(raw.as_bytes(), HeadField::EventSource).as_deref(),
                    want["Records"][0]["eventSource"].as_str()
                );
            }
        }
    }

    #[test]
    fn records_at_every_alignment_and_cut() {
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        for pad in 0..BLOCK {
            let records: Vec<Value> = (0..3).map(|_| rng.object(0)).collect();
            let doc = format!(
                "{}{}",
                " ".repeat(pad),
                json!({"Records": records, "x": rng.value(0)})
            );
            for step in [1, 13, 64, 1 << 16] {
                let got = split(doc.as_bytes(), step).unwrap();
                let raws: Vec<Value> = got
                    .records
                    .iter()
                    .map(|(raw, head)| {
                        assert_eq!(head.invalid, None, "{raw}");
                        serde_json::from_str(raw).unwrap()
                    })
                    .collect();
                assert_eq!(raws, records, "pad {pad} step {step}");
            }
        }
    }

    #[test]
    fn empty_blank_and_bom_documents() {
        for doc in ["", "   \n", "\u{feff}", "{\"Records\":[]}"] {
            let got = split(doc.as_bytes(), 1).unwrap();
            assert!(got.records.is_empty(), "{doc:?}");
        }
        // A document without `Records` is not a CloudTrail file: a bad object, never an empty one.
        for doc in ["{}", "\u{feff}  {}", "{\"eventName\":\"x\"}"] {
            assert!(
                matches!(split(doc.as_bytes(), 1), Err(ObjectError::Corrupt(why)) if why.contains("Records")),
                "{doc:?}"
            );
        }
        let got = split("\u{feff}{\"Records\":[{\"a\":1}]}".as_bytes(), 2).unwrap();
        assert_eq!(got.records.len(), 1);
        for bad in [
            "x",
            "[1]",
            "{\"Records\":[{\"a\":1}",
            "{\"Records\":[1]}",
            "{\"Records\":[\"a\"]}",
            "{\"a\":\"x",
        ] {
            assert!(split(bad.as_bytes(), 3).is_err(), "{bad:?}");
        }
    }

    /// A record that never ends (unbalanced brackets) or is too long makes the object bad; the records before it
    /// were handed out.
    #[test]
    fn endless_record_is_an_error_not_unbounded_memory() {
        let doc = format!(r#"{{"Records":[{{"a":1}},{{"b":[{}"#, "1,".repeat(400_000));
        for check in [RecordCheck::Structure, RecordCheck::Grammar] {
            let mut c = Collect::default();
            let mut r = BufReader::with_capacity(4096, Trickle(doc.as_bytes(), 4096));
            let err =
                split_records_up_to(&mut r, &mut c, 100_000, Vector::detect(), check).unwrap_err();
            assert!(
                err.to_string().contains("Records element 1 is larger"),
                "{err}"
            );
            assert_eq!(c.records.len(), 1);
        }
    }

    /// A record larger than the read buffer is handed out whole.
    #[test]
    fn record_larger_than_the_read_buffer() {
        let big = "y".repeat(3 * READ_SIZE + 17);
        let doc = format!(
            r#"{{"Records":[{{"eventSource":"a"}},{{"big":"{big}","eventSource":"b"}},{{}}]}}"#
        );
        let got = split(doc.as_bytes(), 100_000).unwrap();
        assert_eq!(got.records.len(), 3);
        let (raw, head) = &got.records[1];
        assert_eq!(*raw, format!(r#"{{"big":"{big}","eventSource":"b"}}"#));
        assert_eq!(
            head.get(raw.as_bytes(), HeadField::EventSource).as_deref(),
            Some("b")
        );
    }

    #[test]
    fn numbers_and_literals() {
        for t in [
            "0",
            "-0",
            "12",
            "1.5",
            "-1.25e+10",
            "3E-2",
            "true",
            "false",
            "null",
        ] {
            assert!(valid_token(t.as_bytes()), "{t}");
        }
        for t in [
            "", "-", "01", "1.", ".5", "1e", "1e+", "tru", "nul", "+1", "0x1", "1.2.3",
        ] {
            assert!(!valid_token(t.as_bytes()), "{t}");
        }
    }
}
