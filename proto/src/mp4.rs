//! Just enough of ISO BMFF (MP4) to play fragments in a browser and a desktop player: where a
//! fragmented MP4's init segment ends, the RFC 6381 codec string of its tracks (what
//! `MediaSource.isTypeSupported` asks), each track's timescale, and shifting the decode times of
//! its movie fragments (`tfdt`), so fragments cut with their own timestamps from zero line up on
//! one timeline in an HLS playlist. Reads untrusted bytes: every length is checked, nothing
//! panics, nothing allocates by a length read from the input.

use std::collections::HashMap;

/// One box: its four-character type, and where its body and the box end in the buffer.
#[derive(Debug, Clone, Copy)]
struct BoxAt {
    kind: [u8; 4],
    body: usize,
    end: usize,
}

/// The boxes in `data[from..to]`, in order; stops at the first malformed header.
fn boxes(data: &[u8], from: usize, to: usize) -> Vec<BoxAt> {
    let mut out = Vec::new();
    let mut at = from;
    let to = to.min(data.len());
    while at + 8 <= to {
        let size32 = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
        let kind = [data[at + 4], data[at + 5], data[at + 6], data[at + 7]];
        let (size, header) = match size32 {
            0 => (to - at, 8),
            1 => {
                if at + 16 > to {
                    break;
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[at + 8..at + 16]);
                (
                    usize::try_from(u64::from_be_bytes(b)).unwrap_or(usize::MAX),
                    16,
                )
            }
            n => (n as usize, 8),
        };
        if size < header || size > to - at {
            break;
        }
        out.push(BoxAt {
            kind,
            body: at + header,
            end: at + size,
        });
        at += size;
    }
    out
}

fn child(data: &[u8], parent: BoxAt, kind: &[u8; 4]) -> Option<BoxAt> {
    boxes(data, parent.body, parent.end)
        .into_iter()
        .find(|b| &b.kind == kind)
}

fn path(data: &[u8], mut at: BoxAt, kinds: &[&[u8; 4]]) -> Option<BoxAt> {
    for kind in kinds {
        at = child(data, at, kind)?;
    }
    Some(at)
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The length of the init segment (`ftyp` and `moov`) at the start of a fragmented MP4: the
/// offset where its first `moof` begins. `None` if the file is not a fragmented MP4.
pub fn init_segment_len(data: &[u8]) -> Option<usize> {
    let top = boxes(data, 0, data.len());
    let moov = top.iter().position(|b| &b.kind == b"moov")?;
    let moof = top.iter().position(|b| &b.kind == b"moof")?;
    (moov < moof && &top[0].kind == b"ftyp").then(|| top[moof - 1].end)
}

fn moov(data: &[u8]) -> Option<BoxAt> {
    boxes(data, 0, data.len())
        .into_iter()
        .find(|b| &b.kind == b"moov")
}

fn traks(data: &[u8], moov: BoxAt) -> impl Iterator<Item = BoxAt> + '_ {
    boxes(data, moov.body, moov.end)
        .into_iter()
        .filter(|b| &b.kind == b"trak")
}

/// Each track's id and timescale (ticks per second), from the init segment's `moov`.
pub fn track_timescales(init: &[u8]) -> HashMap<u32, u32> {
    let mut out = HashMap::new();
    let Some(moov) = moov(init) else { return out };
    for trak in traks(init, moov) {
        let (Some(tkhd), Some(mdhd)) = (
            child(init, trak, b"tkhd"),
            path(init, trak, &[b"mdia", b"mdhd"]),
        ) else {
            continue;
        };
        // Full boxes: version 1 has 64-bit times before the field we want.
        let tkhd_v1 = init.get(tkhd.body) == Some(&1);
        let mdhd_v1 = init.get(mdhd.body) == Some(&1);
        let id = be32(init, tkhd.body + if tkhd_v1 { 20 } else { 12 });
        let scale = be32(init, mdhd.body + if mdhd_v1 { 20 } else { 12 });
        if let (Some(id), Some(scale)) = (id, scale) {
            if scale > 0 {
                out.insert(id, scale);
            }
        }
    }
    out
}

/// The RFC 6381 codec string of every track, comma-separated (`avc1.64001f,mp4a.40.2`), as
/// `MediaSource.isTypeSupported('video/mp4; codecs="..."')` wants it. `None` when a track's codec
/// is not one this knows how to name (then a browser cannot be asked either).
pub fn codecs(init: &[u8]) -> Option<String> {
    let moov = moov(init)?;
    let mut names = Vec::new();
    for trak in traks(init, moov) {
        let stsd = path(init, trak, &[b"mdia", b"minf", b"stbl", b"stsd"])?;
        // stsd: version/flags (4), entry count (4), then the sample entries.
        let entry = boxes(init, stsd.body + 8, stsd.end).into_iter().next()?;
        names.push(sample_entry_codec(init, entry)?);
    }
    (!names.is_empty()).then(|| names.join(","))
}

fn sample_entry_codec(data: &[u8], entry: BoxAt) -> Option<String> {
    // A visual sample entry's child boxes start 78 bytes into its body, an audio one's 28.
    let visual = |kind: &[u8; 4]| {
        child(
            data,
            BoxAt {
                body: entry.body + 78,
                ..entry
            },
            kind,
        )
    };
    match &entry.kind {
        b"avc1" | b"avc3" => {
            let avcc = visual(b"avcC")?;
            let b = data.get(avcc.body..avcc.body + 4)?;
            let kind = std::str::from_utf8(&entry.kind).ok()?;
            Some(format!("{kind}.{:02x}{:02x}{:02x}", b[1], b[2], b[3]))
        }
        b"hvc1" | b"hev1" => hevc_codec(data, &entry.kind, visual(b"hvcC")?),
        b"vp09" => {
            // vpcC (a full box): profile, level, then bit depth in the high 4 bits.
            let vpcc = visual(b"vpcC")?;
            let b = data.get(vpcc.body + 4..vpcc.body + 7)?;
            Some(format!("vp09.{:02}.{:02}.{:02}", b[0], b[1], b[2] >> 4))
        }
        b"av01" => {
            // av1C: marker and version, then profile (3 bits) and level (5), then tier and depth.
            let av1c = visual(b"av1C")?;
            let b = data.get(av1c.body..av1c.body + 3)?;
            let tier = if b[2] & 0x80 != 0 { 'H' } else { 'M' };
            let depth = match (b[2] & 0x40 != 0, b[2] & 0x20 != 0) {
                (true, true) => 12,
                (true, false) => 10,
                _ => 8,
            };
            Some(format!(
                "av01.{}.{:02}{tier}.{depth:02}",
                b[1] >> 5,
                b[1] & 0x1f
            ))
        }
        b"mp4a" => {
            let esds = child(
                data,
                BoxAt {
                    body: entry.body + 28,
                    ..entry
                },
                b"esds",
            )?;
            aac_codec(data.get(esds.body + 4..esds.end)?)
        }
        b"Opus" => Some("opus".into()),
        b"fLaC" => Some("flac".into()),
        _ => None,
    }
}

/// `hvc1.<profile>.<compat, bit-reversed hex>.<L|H><level>.<constraint bytes>` (ISO/IEC 14496-15
/// annex E).
fn hevc_codec(data: &[u8], kind: &[u8; 4], hvcc: BoxAt) -> Option<String> {
    let b = data.get(hvcc.body..hvcc.body + 13)?;
    let space = ["", "A", "B", "C"][usize::from(b[1] >> 6)];
    let tier = if b[1] & 0x20 != 0 { 'H' } else { 'L' };
    let profile = b[1] & 0x1f;
    let compat = u32::from_be_bytes([b[2], b[3], b[4], b[5]]).reverse_bits();
    let mut constraints: Vec<u8> = b[6..12].to_vec();
    while constraints.last() == Some(&0) {
        constraints.pop();
    }
    let mut s = format!(
        "{}.{space}{profile}.{compat:x}.{tier}{}",
        std::str::from_utf8(kind).ok()?,
        b[12]
    );
    for c in constraints {
        s.push_str(&format!(".{c:x}"));
    }
    Some(s)
}

/// `mp4a.<object type>.<audio object type>` from an `esds` ES descriptor.
fn aac_codec(es: &[u8]) -> Option<String> {
    // Descriptors: a tag byte, then a length in up to four 7-bit bytes.
    fn descriptor(d: &[u8], tag: u8) -> Option<&[u8]> {
        if *d.first()? != tag {
            return None;
        }
        let (mut len, mut at) = (0usize, 1);
        for _ in 0..4 {
            let b = *d.get(at)?;
            at += 1;
            len = (len << 7) | usize::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
        d.get(at..at + len.min(d.len().saturating_sub(at)))
    }
    let es_desc = descriptor(es, 0x03)?;
    let flags = *es_desc.get(2)?;
    let mut at = 3;
    if flags & 0x80 != 0 {
        at += 2; // depends-on ES id
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(*es_desc.get(at)?); // URL
    }
    if flags & 0x20 != 0 {
        at += 2; // OCR ES id
    }
    let config = descriptor(es_desc.get(at..)?, 0x04)?;
    let object_type = *config.first()?;
    if object_type != 0x40 {
        return Some(format!("mp4a.{object_type:x}"));
    }
    let specific = descriptor(config.get(13..)?, 0x05)?;
    let mut aot = specific.first()? >> 3;
    if aot == 31 {
        let b = specific.get(..2)?;
        aot = 32 + (((b[0] & 0x07) << 3) | (b[1] >> 5));
    }
    Some(format!("mp4a.40.{aot}"))
}

/// Adds `shift[track id]` ticks to the decode time (`tfdt`) of every track fragment in `media`
/// (the movie fragments after an init segment), in place. Errors when a fragment has no `tfdt`
/// or a 32-bit one would overflow.
pub fn shift_decode_times(media: &mut [u8], shift: &HashMap<u32, u64>) -> Result<(), String> {
    for moof in boxes(media, 0, media.len()) {
        if &moof.kind != b"moof" {
            continue;
        }
        for traf in boxes(media, moof.body, moof.end) {
            if &traf.kind != b"traf" {
                continue;
            }
            let tfhd = child(media, traf, b"tfhd").ok_or("a track fragment without tfhd")?;
            let track = be32(media, tfhd.body + 4).ok_or("a short tfhd")?;
            let by = shift.get(&track).copied().unwrap_or(0);
            let tfdt = child(media, traf, b"tfdt").ok_or("a track fragment without tfdt")?;
            let at = tfdt.body + 4;
            match media.get(tfdt.body) {
                Some(1) if at + 8 <= tfdt.end => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&media[at..at + 8]);
                    let t = u64::from_be_bytes(b)
                        .checked_add(by)
                        .ok_or("tfdt overflows")?;
                    media[at..at + 8].copy_from_slice(&t.to_be_bytes());
                }
                Some(0) if at + 4 <= tfdt.end => {
                    let t = u64::from(be32(media, at).ok_or("a short tfdt")?) + by;
                    let t = u32::try_from(t).map_err(|_| "a 32-bit tfdt overflows")?;
                    media[at..at + 4].copy_from_slice(&t.to_be_bytes());
                }
                _ => return Err("a malformed tfdt".into()),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp4box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn a_movie_fragments_decode_time_is_shifted_per_track() {
        let tfhd = mp4box(b"tfhd", &[0, 0, 0, 0, 0, 0, 0, 1]);
        let tfdt = mp4box(b"tfdt", &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10]);
        let traf = mp4box(b"traf", &[tfhd, tfdt].concat());
        let mut media = [mp4box(b"moof", &traf), mp4box(b"mdat", b"xyz")].concat();
        shift_decode_times(&mut media, &HashMap::from([(1, 90_000)])).unwrap();
        let t = &media[media.len() - 11 - 8..media.len() - 11];
        assert_eq!(u64::from_be_bytes(t.try_into().unwrap()), 90_010);
    }

    #[test]
    fn garbage_is_not_an_init_segment_and_never_panics() {
        assert_eq!(init_segment_len(b""), None);
        assert_eq!(init_segment_len(&[0xff; 64]), None);
        assert_eq!(codecs(&[0, 0, 0, 9, b'm', b'o', b'o', b'v', 1]), None);
        for n in 0..64u8 {
            let junk: Vec<u8> = (0..200u32).map(|i| (i as u8).wrapping_mul(n)).collect();
            let _ = codecs(&junk);
            let _ = track_timescales(&junk);
            let mut j = junk.clone();
            let _ = shift_decode_times(&mut j, &HashMap::new());
        }
    }

    /// A moov with one track whose sample entry `kind` holds `config` (a visual entry).
    fn init_with(kind: &[u8; 4], config: Vec<u8>) -> Vec<u8> {
        let mut entry_body = vec![0u8; 78];
        entry_body.extend(config);
        let entry = mp4box(kind, &entry_body);
        let stsd = mp4box(b"stsd", &[vec![0, 0, 0, 0, 0, 0, 0, 1], entry].concat());
        let stbl = mp4box(b"stbl", &stsd);
        let minf = mp4box(b"minf", &stbl);
        let mdia = mp4box(b"mdia", &minf);
        let trak = mp4box(b"trak", &mdia);
        [mp4box(b"ftyp", b"iso6"), mp4box(b"moov", &trak)].concat()
    }

    #[test]
    fn video_codecs_are_named_as_browsers_expect() {
        let avc = init_with(b"avc1", mp4box(b"avcC", &[1, 0x64, 0x00, 0x1f, 0xff]));
        assert_eq!(codecs(&avc).as_deref(), Some("avc1.64001f"));
        let vp9 = init_with(
            b"vp09",
            mp4box(b"vpcC", &[1, 0, 0, 0, 0, 10, 0x80, 1, 1, 1]),
        );
        assert_eq!(codecs(&vp9).as_deref(), Some("vp09.00.10.08"));
        let av1 = init_with(b"av01", mp4box(b"av1C", &[0x81, 0x04, 0x0c, 0]));
        assert_eq!(codecs(&av1).as_deref(), Some("av01.0.04M.08"));
        // Main profile, level 3.1 (93), no constraint flags: hvc1.1.6.L93.B0 has B0 (progressive).
        let hvcc = [1, 0x01, 0x60, 0, 0, 0, 0xb0, 0, 0, 0, 0, 0, 93];
        let hevc = init_with(b"hvc1", mp4box(b"hvcC", &hvcc));
        assert_eq!(codecs(&hevc).as_deref(), Some("hvc1.1.6.L93.b0"));
        assert_eq!(
            codecs(&init_with(b"xyz1", vec![])),
            None,
            "an unknown codec has no name"
        );
    }

    #[test]
    fn aac_lc_is_named_from_its_descriptor() {
        // ES_Descriptor(id 1, no flags) > DecoderConfig(0x40, ...) > DecoderSpecificInfo(AOT 2).
        let specific = [0x05, 2, 0x12, 0x10];
        let mut config = vec![0x04, (13 + specific.len()) as u8, 0x40, 0x15];
        config.extend_from_slice(&[0; 11]);
        config.extend_from_slice(&specific);
        let mut es = vec![0x03, (3 + config.len()) as u8, 0, 1, 0];
        es.extend_from_slice(&config);
        assert_eq!(aac_codec(&es).as_deref(), Some("mp4a.40.2"));
    }
}
