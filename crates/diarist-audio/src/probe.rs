//! Finding a stream's container as symphonia's probe does, with guards where symphonia would act
//! on what a file claims without checking it.

use std::io::{Read, Seek, SeekFrom};

use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSource, MediaSourceStream, ReadBytes, SeekBuffered};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Instantiate;

use crate::{AudioError, Shortfall, claims};

/// The marker of an ADTS (raw AAC) stream.
const ADTS_MARKER: [u8; 2] = [0xff, 0xf1];

/// Finds the container (skipping metadata such as ID3 tags) and opens its reader, once its header
/// has been checked ([`claims::check`]); returns it with the header's shortfall, if any.
pub(crate) fn probe(
    mut stream: MediaSourceStream,
) -> Result<(Box<dyn FormatReader>, Option<Shortfall>), AudioError> {
    let unsupported = |e: SymphoniaError| AudioError::Unsupported(e.to_string());
    let probe = symphonia::default::get_probe();
    loop {
        match probe.next(&mut stream).map_err(unsupported)? {
            Instantiate::Format(make) => {
                let shortfall = claims::check(&mut stream)?;
                if peek_marker(&mut stream) == Some(ADTS_MARKER) {
                    stream =
                        MediaSourceStream::new(Box::new(FrontToBack(stream)), Default::default());
                }
                let options = FormatOptions {
                    enable_gapless: true,
                    ..Default::default()
                };
                return Ok((make(stream, &options).map_err(unsupported)?, shortfall));
            }
            Instantiate::Metadata(make) => {
                claims::check(&mut stream)?;
                make(&MetadataOptions::default())
                    .read_all(&mut stream)
                    .map_err(unsupported)?;
            }
        }
    }
}

/// The two bytes at the stream's position, which stays where it was.
fn peek_marker(stream: &mut MediaSourceStream) -> Option<[u8; 2]> {
    let marker = stream.read_double_bytes().ok();
    if marker.is_some() {
        stream.seek_buffered_rev(2);
    }
    marker
}

/// The rest of a stream, from its position, as a source read front to back. Symphonia's ADTS
/// reader, given a seekable source, estimates the duration by sampling the file at offsets
/// computed without checks, which panics when the stream is short after a long tag (a cover
/// image, or junk); a stream read front to back gets no estimate, which nothing here needs.
struct FrontToBack(MediaSourceStream);

impl Read for FrontToBack {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Seek for FrontToBack {
    fn seek(&mut self, _: SeekFrom) -> std::io::Result<u64> {
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

impl MediaSource for FrontToBack {
    fn is_seekable(&self) -> bool {
        false
    }

    fn byte_len(&self) -> Option<u64> {
        None
    }
}
