//! What container headers claim, checked where symphonia is about to parse them and before it
//! acts on them: symphonia 0.5 panics on a WAV header claiming 0 Hz, and allocates whatever a
//! length field asks for (a FLAC comment claiming 3 GB, an MP4 table claiming 4 billion entries,
//! an ID3 frame claiming 4 GB)
//! before finding out the file is far shorter. A header whose lengths cannot fit in its file is
//! refused here ([`AudioError::Header`]); a WAV header whose data chunk reaches past the end of
//! the file is the one exception (cut-off copies and streamed recordings are common, and what
//! they hold is decoded): it is reported as a [`Shortfall`].

use std::io::{Seek, SeekFrom};

use symphonia::core::io::{MediaSource, MediaSourceStream, ReadBytes, SeekBuffered};

use crate::{AudioError, limits};

/// How much more audio data a header claims than its file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    /// Bytes of audio data the header claims.
    pub claimed_bytes: u64,
    /// Bytes of audio data the file holds.
    pub held_bytes: u64,
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the header claims {} bytes of audio data, the file holds {}",
            self.claimed_bytes, self.held_bytes
        )
    }
}

/// Deepest MP4 atom nesting walked (real files nest 8 deep).
const MAX_DEPTH: usize = 16;

/// Checks the header of the container or metadata tag starting at the stream's position (WAV,
/// FLAC, MP4, ID3v2; others pass unchecked) and leaves the stream where it was. A WAV data chunk reaching past
/// the end of the file comes back as its [`Shortfall`].
pub(crate) fn check(mss: &mut MediaSourceStream) -> Result<Option<Shortfall>, AudioError> {
    let start = mss.pos();
    let Some(len) = mss.byte_len() else {
        return Ok(None);
    };
    let mut marker = [0u8; 4];
    let result = match mss.read_buf_exact(&mut marker) {
        Err(_) => Ok(None),
        Ok(()) => {
            let mut r = Reader { mss, len };
            match &marker {
                b"RIFF" => r.wav(),
                b"fLaC" => r.flac().map(|()| None),
                // The probe stops at an MP4's `ftyp` atom type, 4 bytes into the atom.
                b"ftyp" if start >= 4 => r.mp4(start - 4, len, None, 0).map(|()| None),
                [b'I', b'D', b'3', version] => r.id3(*version).map(|()| None),
                _ => Ok(None),
            }
        }
    };
    if mss.seek_buffered(start) != start {
        // Back where the probe left it, with the bytes before in the buffer: readers look back
        // at their marker (MP4's atom size precedes its `ftyp`).
        let back = start.saturating_sub(16);
        mss.seek(SeekFrom::Start(back))
            .and_then(|_| mss.ignore_bytes(start - back))
            .map_err(|e| AudioError::Unsupported(format!("cannot re-read the header: {e}")))?;
    }
    result
}

/// A header being read: the stream and the length of the file.
struct Reader<'a> {
    mss: &'a mut MediaSourceStream,
    len: u64,
}

/// A 28-bit ID3 "syncsafe" integer (7 bits in each byte).
fn syncsafe(v: u32) -> u32 {
    (v & 0x7f) | (v >> 1 & 0x3f80) | (v >> 2 & 0x1f_c000) | (v >> 3 & 0xfe0_0000)
}

/// Every frame of an ID3v2 tag's body inside it (up to the padding).
fn id3_frames(tag: &[u8], version: u8, extended: bool) -> Result<(), AudioError> {
    let be = |b: &[u8]| b.iter().fold(0u64, |v, &x| v << 8 | u64::from(x));
    let mut at = 0usize;
    if extended && tag.len() >= 4 {
        let n = be(&tag[..4]);
        at = match version {
            3 => n.saturating_add(4),
            _ => u64::from(syncsafe(n as u32)),
        }
        .min(u64::MAX >> 1) as usize;
    }
    let (id_len, header) = if version == 2 { (3, 6) } else { (4, 10) };
    while at.saturating_add(header) <= tag.len() && tag[at] != 0 {
        let raw = be(&tag[at + id_len..at + 2 * id_len]);
        let size = match version {
            4 => u64::from(syncsafe(raw as u32)),
            _ => raw,
        };
        let left = (tag.len() - at - header) as u64;
        if size > left {
            let id = String::from_utf8_lossy(&tag[at..at + id_len]);
            return Err(AudioError::Header(format!(
                "ID3v2 frame `{id}` claims {size} bytes, the tag holds {left}"
            )));
        }
        at += header + size as usize;
    }
    Ok(())
}

/// A file cut inside its header: there is no audio to decode.
fn ended(_: std::io::Error) -> AudioError {
    AudioError::Header("the file ends inside its header".into())
}

impl Reader<'_> {
    /// Bytes of the file from the stream's position on.
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.mss.pos())
    }

    /// Moves on `n` bytes, which must lie inside the file.
    fn skip(&mut self, n: u64, what: &str) -> Result<(), AudioError> {
        if n > self.remaining() {
            return Err(AudioError::Header(format!(
                "{what} claims {n} bytes, the file holds {}",
                self.remaining()
            )));
        }
        let to = self.mss.pos() + n;
        self.mss.seek(SeekFrom::Start(to)).map_err(ended)?;
        Ok(())
    }

    /// RIFF/WAVE: the format chunk against the limits, every chunk before the data chunk inside
    /// the file, and the data chunk compared with what the file holds.
    fn wav(&mut self) -> Result<Option<Shortfall>, AudioError> {
        self.mss.read_u32().map_err(ended)?;
        if self.mss.read_quad_bytes().map_err(ended)? != *b"WAVE" {
            return Ok(None);
        }
        while let Ok(id) = self.mss.read_quad_bytes() {
            let len = u64::from(self.mss.read_u32().map_err(ended)?);
            let name = format!("WAV chunk `{}`", String::from_utf8_lossy(&id));
            if &id == b"data" {
                let held = self.remaining();
                return Ok((len > held).then_some(Shortfall {
                    claimed_bytes: len,
                    held_bytes: held,
                }));
            }
            if &id == b"fmt " && len >= 16 {
                self.mss.read_u16().map_err(ended)?;
                let channels = self.mss.read_u16().map_err(ended)?;
                let rate = self.mss.read_u32().map_err(ended)?;
                limits::check_format(rate, u64::from(channels))?;
                self.skip(len - 8 + len % 2, &name)?;
            } else {
                self.skip(len + len % 2, &name)?;
            }
        }
        Ok(None)
    }

    /// ID3v2 (major `version`, after the `ID3` marker): the tag inside the file, and every frame
    /// inside the tag (read whole, undoing the tag-wide unsynchronisation of versions 2 and 3).
    fn id3(&mut self, version: u8) -> Result<(), AudioError> {
        let head = (self.mss.read_u8(), self.mss.read_u8(), self.read_u32());
        let (Ok(_), Ok(flags), Ok(size)) = head else {
            return Err(ended(std::io::ErrorKind::UnexpectedEof.into()));
        };
        let size = u64::from(syncsafe(size));
        if !(2..=4).contains(&version) {
            return Ok(()); // symphonia refuses it
        }
        if size > self.remaining() {
            return Err(AudioError::Header(format!(
                "ID3v2 tag claims {size} bytes, the file holds {}",
                self.remaining()
            )));
        }
        let mut tag = vec![0u8; size as usize];
        self.mss.read_buf_exact(&mut tag).map_err(ended)?;
        if flags & 0x80 != 0 && version < 4 {
            // Unsynchronisation inserted a 0 after every 0xff.
            let mut prev = 0;
            tag.retain(|&b| {
                let keep = !(prev == 0xff && b == 0);
                prev = b;
                keep
            });
        }
        id3_frames(&tag, version, flags & 0x40 != 0)
    }

    /// FLAC: every metadata block inside the file, and the lengths inside comment and picture
    /// blocks inside their block.
    fn flac(&mut self) -> Result<(), AudioError> {
        loop {
            let Ok(head) = self.mss.read_be_u32() else {
                return Ok(());
            };
            let (last, kind, len) = (
                head >> 31 == 1,
                (head >> 24) & 0x7f,
                u64::from(head & 0xff_ffff),
            );
            let name = format!("FLAC metadata block {kind}");
            if len > self.remaining() {
                return Err(AudioError::Header(format!(
                    "{name} claims {len} bytes, the file holds {}",
                    self.remaining()
                )));
            }
            let end = self.mss.pos() + len;
            match kind {
                4 => self.flac_comments(end, &name)?,
                6 => self.flac_picture(end, &name)?,
                _ => {}
            }
            self.mss.seek(SeekFrom::Start(end)).map_err(ended)?;
            if last {
                return Ok(());
            }
        }
    }

    /// Moves past a field of `n` bytes that must end by `end`.
    fn field(&mut self, n: u64, end: u64, what: &str) -> Result<(), AudioError> {
        self.fits(n, end, what)?;
        self.mss
            .seek(SeekFrom::Start(self.mss.pos() + n))
            .map_err(ended)?;
        Ok(())
    }

    /// A Vorbis comment block: vendor string, then a count of length-prefixed comments.
    fn flac_comments(&mut self, end: u64, what: &str) -> Result<(), AudioError> {
        let vendor = self.mss.read_u32().map_err(ended)?;
        self.field(u64::from(vendor), end, what)?;
        let count = self.mss.read_u32().map_err(ended)?;
        for _ in 0..count {
            if self.mss.pos() + 4 > end {
                break;
            }
            let len = self.mss.read_u32().map_err(ended)?;
            self.field(u64::from(len), end, what)?;
        }
        Ok(())
    }

    /// A picture block: type, MIME type, description, four numbers, image data.
    fn flac_picture(&mut self, end: u64, what: &str) -> Result<(), AudioError> {
        self.mss.read_be_u32().map_err(ended)?;
        for _ in 0..2 {
            let len = self.mss.read_be_u32().map_err(ended)?;
            self.field(u64::from(len), end, what)?;
        }
        self.field(16, end, what)?;
        let data = self.mss.read_be_u32().map_err(ended)?;
        self.field(u64::from(data), end, what)
    }

    /// MP4 atoms from `from` to `to` (in a `parent` atom): each inside its parent (only a
    /// top-level `mdat` may reach past the end of a cut-off file), containers walked as symphonia
    /// reads them, and sample tables' entries inside their atom.
    fn mp4(
        &mut self,
        from: u64,
        to: u64,
        parent: Option<[u8; 4]>,
        depth: usize,
    ) -> Result<(), AudioError> {
        let mut at = from;
        while at.saturating_add(8) <= to {
            self.mss.seek(SeekFrom::Start(at)).map_err(ended)?;
            let (size, kind, header) = self.atom_header(to - at)?;
            let name = format!("MP4 atom `{}`", String::from_utf8_lossy(&kind));
            if size < header {
                return Ok(()); // symphonia refuses it
            }
            if size > to - at {
                if depth == 0 && &kind == b"mdat" {
                    return Ok(());
                }
                return Err(AudioError::Header(format!(
                    "{name} claims {size} bytes, its container holds {}",
                    to - at
                )));
            }
            let body = at + header;
            let end = at + size;
            // Every atom in a metadata list is a container of `data` atoms.
            if parent == Some(*b"ilst") && depth < MAX_DEPTH {
                self.mp4(body, end, Some(kind), depth + 1)?;
                at = end;
                continue;
            }
            match &kind {
                b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"edts" | b"mvex" | b"moof"
                | b"traf" | b"udta" | b"dinf" | b"ilst"
                    if depth < MAX_DEPTH =>
                {
                    self.mp4(body, end, Some(kind), depth + 1)?
                }
                // A full atom: version and flags before its children.
                b"meta" if depth < MAX_DEPTH => self.mp4(body + 4, end, Some(kind), depth + 1)?,
                b"stsz" | b"stco" | b"co64" | b"stts" | b"stsc" => {
                    self.mp4_table(&kind, body, end, &name)?
                }
                b"trun" | b"tfhd" | b"trex" => self.mp4_fragment(&kind, body, end, &name)?,
                _ => {}
            }
            at = end;
        }
        Ok(())
    }

    /// An atom's size (the rest of its container for size 0), type and header length.
    fn atom_header(&mut self, room: u64) -> Result<(u64, [u8; 4], u64), AudioError> {
        let size = u64::from(self.mss.read_be_u32().map_err(ended)?);
        let kind = self.mss.read_quad_bytes().map_err(ended)?;
        Ok(match size {
            0 => (room, kind, 8),
            1 => (self.mss.read_be_u64().map_err(ended)?, kind, 16),
            _ => (size, kind, 8),
        })
    }

    /// A sample table (after its version and flags): its entries must fit in its atom, and the
    /// sample sizes it gives in the file (symphonia allocates each sample's claimed size).
    fn mp4_table(
        &mut self,
        kind: &[u8; 4],
        body: u64,
        end: u64,
        what: &str,
    ) -> Result<(), AudioError> {
        self.mss.seek(SeekFrom::Start(body + 4)).map_err(ended)?;
        let (entry, sizes) = match kind {
            b"stsz" => {
                let constant = self.read_u32()?;
                self.sample_size(constant, what)?;
                if constant == 0 { (4, true) } else { (0, false) }
            }
            b"co64" | b"stts" => (8, false),
            b"stsc" => (12, false),
            _ => (4, false),
        };
        let count = u64::from(self.read_u32()?);
        let what = format!("{what} with {count} entries");
        if !sizes {
            return self.field(count * entry, end, &what);
        }
        self.fits(count * entry, end, &what)?;
        for _ in 0..count {
            let size = self.read_u32()?;
            self.sample_size(size, &what)?;
        }
        Ok(())
    }

    /// A movie fragment's sample sizes (`trun` runs, `tfhd` and `trex` defaults) in the file.
    fn mp4_fragment(
        &mut self,
        kind: &[u8; 4],
        body: u64,
        end: u64,
        what: &str,
    ) -> Result<(), AudioError> {
        self.mss.seek(SeekFrom::Start(body)).map_err(ended)?;
        let flags = self.read_u32()? & 0xff_ffff;
        match kind {
            b"trex" => {
                self.field(12, end, what)?;
                let size = self.read_u32()?;
                self.sample_size(size, what)
            }
            b"tfhd" => {
                let skip = 4
                    + 8 * u64::from(flags & 1)
                    + 4 * u64::from((flags >> 1) & 1)
                    + 4 * u64::from((flags >> 3) & 1);
                self.field(skip, end, what)?;
                if flags & 0x10 == 0 {
                    return Ok(());
                }
                let size = self.read_u32()?;
                self.sample_size(size, what)
            }
            _ => self.mp4_run(flags, end, what),
        }
    }

    /// A track fragment run: its samples fit in its atom, and their sizes in the file.
    fn mp4_run(&mut self, flags: u32, end: u64, what: &str) -> Result<(), AudioError> {
        let count = u64::from(self.read_u32()?);
        self.field(
            4 * u64::from(flags & 1) + 4 * u64::from((flags >> 2) & 1),
            end,
            what,
        )?;
        let fields: Vec<bool> = (8..12).map(|bit| flags >> bit & 1 == 1).collect();
        let per_sample = 4 * fields.iter().filter(|&&f| f).count() as u64;
        let what = format!("{what} with {count} samples");
        self.fits(count * per_sample, end, &what)?;
        if !fields[1] {
            return Ok(());
        }
        for _ in 0..count {
            for (i, present) in fields.iter().enumerate() {
                match (*present, i) {
                    (true, 1) => {
                        let size = self.read_u32()?;
                        self.sample_size(size, &what)?;
                    }
                    (true, _) => {
                        self.read_u32()?;
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn read_u32(&mut self) -> Result<u32, AudioError> {
        self.mss.read_be_u32().map_err(ended)
    }

    /// Fails unless `n` more bytes end by `end`.
    fn fits(&self, n: u64, end: u64, what: &str) -> Result<(), AudioError> {
        let left = end.saturating_sub(self.mss.pos());
        if n > left {
            return Err(AudioError::Header(format!(
                "{what} claims {n} more bytes, only {left} remain"
            )));
        }
        Ok(())
    }

    /// Fails if one sample claims more bytes than the whole file holds.
    fn sample_size(&self, size: u32, what: &str) -> Result<(), AudioError> {
        if u64::from(size) > self.len {
            return Err(AudioError::Header(format!(
                "{what} claims a sample of {size} bytes, the file holds {}",
                self.len
            )));
        }
        Ok(())
    }
}
