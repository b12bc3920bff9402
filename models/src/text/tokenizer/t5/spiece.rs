//! A minimal reader of SentencePiece's `spiece.model`: the protobuf `ModelProto` of
//! sentencepiece_model.proto, decoded from the wire format by hand (no protobuf dependency for
//! four messages). Only the fields T5's tokenizer needs are kept; every other field is skipped,
//! as protobuf does with unknown fields. A field that occurs twice follows protobuf's rules: the
//! last scalar wins, embedded messages merge, repeated fields append.
//!
//! Field numbers (checked against sentencepiece_model.proto as shipped with sentencepiece 0.2):
//! - `ModelProto`: pieces = 1 (repeated SentencePiece), trainer_spec = 2, normalizer_spec = 3.
//! - `SentencePiece`: piece = 1 (string), score = 2 (float), type = 3 (enum, default NORMAL).
//! - `TrainerSpec`: model_type = 3 (enum, default UNIGRAM), byte_fallback = 35, unk_id = 40
//!   (default 0).
//! - `NormalizerSpec`: name = 1, precompiled_charsmap = 2 (bytes).

/// `SentencePiece.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl PieceType {
    fn from_wire(v: u64) -> Self {
        match v {
            2 => PieceType::Unknown,
            3 => PieceType::Control,
            4 => PieceType::UserDefined,
            5 => PieceType::Unused,
            6 => PieceType::Byte,
            // 1, or a value this proto2 enum does not define: protobuf keeps an undefined enum
            // value out of the field, which then reads as its default, NORMAL.
            _ => PieceType::Normal,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: PieceType,
}

/// `TrainerSpec.model_type`: UNIGRAM = 1, BPE = 2, WORD = 3, CHAR = 4.
pub(crate) const UNIGRAM: u64 = 1;

#[derive(Clone, Debug)]
pub(crate) struct TrainerSpec {
    pub model_type: u64,
    pub unk_id: i32,
    pub byte_fallback: bool,
}

impl Default for TrainerSpec {
    /// The proto's declared defaults.
    fn default() -> Self {
        TrainerSpec {
            model_type: UNIGRAM,
            unk_id: 0,
            byte_fallback: false,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct NormalizerSpec {
    pub name: String,
    pub precompiled_charsmap: Vec<u8>,
}

/// The parts of a `ModelProto` T5's tokenizer is built from.
#[derive(Clone, Debug, Default)]
pub(crate) struct ModelProto {
    pub pieces: Vec<Piece>,
    /// `None` when the file has no such field: a SentencePiece trainer always writes both specs,
    /// so a missing one means a file cut short between two fields.
    pub trainer_spec: Option<TrainerSpec>,
    pub normalizer_spec: Option<NormalizerSpec>,
}

/// The name of a `model_type` value, for error messages.
pub(crate) fn model_type_name(t: u64) -> String {
    match t {
        1 => "UNIGRAM".into(),
        2 => "BPE".into(),
        3 => "WORD".into(),
        4 => "CHAR".into(),
        other => format!("unknown ({other})"),
    }
}

/// Decode a `ModelProto`. The error says where in the file (byte offset) and what is wrong.
pub(crate) fn parse_model(bytes: &[u8]) -> Result<ModelProto, String> {
    let mut model = ModelProto::default();
    let mut r = Reader::new(bytes, 0);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                let (sub, at) = r.message(field, wire, "pieces")?;
                model.pieces.push(parse_piece(sub, at)?);
            }
            2 => {
                let (sub, at) = r.message(field, wire, "trainer_spec")?;
                let spec = model.trainer_spec.get_or_insert_with(TrainerSpec::default);
                parse_trainer_spec(sub, at, spec)?;
            }
            3 => {
                let (sub, at) = r.message(field, wire, "normalizer_spec")?;
                let spec = model
                    .normalizer_spec
                    .get_or_insert_with(NormalizerSpec::default);
                parse_normalizer_spec(sub, at, spec)?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Ok(model)
}

fn parse_piece(bytes: &[u8], base: usize) -> Result<Piece, String> {
    let mut piece = Piece {
        piece: String::new(),
        score: 0.0,
        kind: PieceType::Normal,
    };
    let mut r = Reader::new(bytes, base);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => piece.piece = r.string(field, wire, "SentencePiece.piece")?,
            2 => piece.score = r.float(field, wire, "SentencePiece.score")?,
            3 => {
                piece.kind =
                    PieceType::from_wire(r.varint_field(field, wire, "SentencePiece.type")?)
            }
            _ => r.skip(field, wire)?,
        }
    }
    Ok(piece)
}

fn parse_trainer_spec(bytes: &[u8], base: usize, spec: &mut TrainerSpec) -> Result<(), String> {
    let mut r = Reader::new(bytes, base);
    while let Some((field, wire)) = r.key()? {
        match field {
            3 => spec.model_type = r.varint_field(field, wire, "TrainerSpec.model_type")?,
            35 => {
                spec.byte_fallback = r.varint_field(field, wire, "TrainerSpec.byte_fallback")? != 0
            }
            // int32: a negative value is sign-extended to 64 bits on the wire; keep the low 32.
            40 => spec.unk_id = r.varint_field(field, wire, "TrainerSpec.unk_id")? as i32,
            _ => r.skip(field, wire)?,
        }
    }
    Ok(())
}

fn parse_normalizer_spec(
    bytes: &[u8],
    base: usize,
    spec: &mut NormalizerSpec,
) -> Result<(), String> {
    let mut r = Reader::new(bytes, base);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => spec.name = r.string(field, wire, "NormalizerSpec.name")?,
            2 => {
                let (b, _) = r.len_delimited(field, wire, "NormalizerSpec.precompiled_charsmap")?;
                spec.precompiled_charsmap = b.to_vec();
            }
            _ => r.skip(field, wire)?,
        }
    }
    Ok(())
}

// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// A cursor over one message's bytes; `base` is where they start in the file, so errors give
/// file offsets.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    fn at(&self) -> usize {
        self.base + self.pos
    }

    fn varint(&mut self) -> Result<u64, String> {
        let start = self.at();
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(format!(
                    "a number at byte {start} runs past the end of its message"
                ));
            };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!("a number at byte {start} is longer than 10 bytes"))
    }

    /// The next field's number and wire type, or `None` at the end of the message.
    fn key(&mut self) -> Result<Option<(u64, u8)>, String> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let at = self.at();
        let key = self.varint()?;
        let (field, wire) = (key >> 3, (key & 7) as u8);
        if field == 0 {
            return Err(format!("field number 0 at byte {at}"));
        }
        Ok(Some((field, wire)))
    }

    fn take(&mut self, n: usize, field: u64) -> Result<(&'a [u8], usize), String> {
        let at = self.at();
        let left = self.buf.len() - self.pos;
        if n > left {
            return Err(format!(
                "field {field} at byte {at} needs {n} bytes but its message has {left} left"
            ));
        }
        let b = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok((b, at))
    }

    fn expect(&self, field: u64, wire: u8, want: u8, name: &str) -> Result<(), String> {
        if wire == want {
            Ok(())
        } else {
            Err(format!(
                "{name} (field {field}) before byte {} has wire type {wire}, not {want}",
                self.at()
            ))
        }
    }

    fn len_delimited(
        &mut self,
        field: u64,
        wire: u8,
        name: &str,
    ) -> Result<(&'a [u8], usize), String> {
        self.expect(field, wire, LEN, name)?;
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| format!("{name}: length {n} is too large"))?;
        self.take(n, field)
    }

    fn message(&mut self, field: u64, wire: u8, name: &str) -> Result<(&'a [u8], usize), String> {
        self.len_delimited(field, wire, name)
    }

    fn string(&mut self, field: u64, wire: u8, name: &str) -> Result<String, String> {
        let (b, at) = self.len_delimited(field, wire, name)?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("{name} at byte {at} is not valid UTF-8"))
    }

    fn float(&mut self, field: u64, wire: u8, name: &str) -> Result<f32, String> {
        self.expect(field, wire, FIXED32, name)?;
        let (b, _) = self.take(4, field)?;
        Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn varint_field(&mut self, field: u64, wire: u8, name: &str) -> Result<u64, String> {
        self.expect(field, wire, VARINT, name)?;
        self.varint()
    }

    /// Skip a field this reader does not keep.
    fn skip(&mut self, field: u64, wire: u8) -> Result<(), String> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8, field).map(drop),
            FIXED32 => self.take(4, field).map(drop),
            LEN => self.len_delimited(field, wire, "a field").map(drop),
            // 3 and 4 are proto2 groups, which sentencepiece_model.proto does not use; 6 and 7
            // do not exist.
            other => Err(format!(
                "field {field} before byte {} has wire type {other}, which SentencePiece models \
                 do not use",
                self.at()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_int32_is_sign_extended() {
        // unk_id = -1: ten bytes, as protobuf writes a negative int32.
        let mut spec = vec![0xc0, 0x02];
        spec.extend([0xff; 9]);
        spec.push(0x01);
        let mut t = TrainerSpec::default();
        parse_trainer_spec(&spec, 0, &mut t).unwrap();
        assert_eq!(t.unk_id, -1);
    }

    #[test]
    fn unknown_fields_are_skipped_and_messages_merge() {
        // trainer_spec { model_type: 2 }, an unknown fixed64 field 9, trainer_spec { unk_id: 3 }.
        let bytes = [
            0x12, 0x02, 0x18, 0x02, 0x49, 1, 2, 3, 4, 5, 6, 7, 8, 0x12, 0x03, 0xc0, 0x02, 0x03,
        ];
        let m = parse_model(&bytes).unwrap();
        let t = m.trainer_spec.unwrap();
        assert_eq!((t.model_type, t.unk_id), (2, 3));
    }

    #[test]
    fn overlong_lengths_are_errors() {
        let e = parse_model(&[0x0a, 0x05, 0x0a, 0x01]).unwrap_err();
        assert!(e.contains("needs 5 bytes"), "{e}");
        let e = parse_model(&[0x0a, 0xff]).unwrap_err();
        assert!(e.contains("runs past the end"), "{e}");
    }
}
