//! The dense operation kinds the run loop dispatches on: operation, width and operand form in
//! one byte, so `match` compiles to a single jump table.

/// A pre-decoded operation kind. `I`/`R` suffixes: immediate or register operand; `32`/`64`:
/// operation width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[rustfmt::skip]
pub(crate) enum K {
    AddI64, AddR64, SubI64, SubR64, MulI64, MulR64, DivI64, DivR64, SDivI64, SDivR64,
    ModI64, ModR64, SModI64, SModR64, OrI64, OrR64, AndI64, AndR64, XorI64, XorR64,
    LshI64, LshR64, RshI64, RshR64, ArshI64, ArshR64, MovI64, MovR64, Neg64,
    Sx8To64, Sx16To64, Sx32To64,
    AddI32, AddR32, SubI32, SubR32, MulI32, MulR32, DivI32, DivR32, SDivI32, SDivR32,
    ModI32, ModR32, SModI32, SModR32, OrI32, OrR32, AndI32, AndR32, XorI32, XorR32,
    LshI32, LshR32, RshI32, RshR32, ArshI32, ArshR32, MovI32, MovR32, Neg32,
    Sx8To32, Sx16To32,
    Zext16, Zext32, Bswap16, Bswap32, Bswap64, Nop,
    Ja,
    JeqI, JeqR, JgtI, JgtR, JgeI, JgeR, JsetI, JsetR, JneI, JneR, JsgtI, JsgtR,
    JsgeI, JsgeR, JltI, JltR, JleI, JleR, JsltI, JsltR, JsleI, JsleR,
    Jeq32I, Jeq32R, Jgt32I, Jgt32R, Jge32I, Jge32R, Jset32I, Jset32R, Jne32I, Jne32R,
    Jsgt32I, Jsgt32R, Jsge32I, Jsge32R, Jlt32I, Jlt32R, Jle32I, Jle32R, Jslt32I, Jslt32R,
    Jsle32I, Jsle32R,
    LdxB, LdxH, LdxW, LdxDW, LdxSB, LdxSH, LdxSW,
    StB, StH, StW, StDW, StxB, StxH, StxW, StxDW,
    AAdd32, AAdd64, AOr32, AOr64, AAnd32, AAnd64, AXor32, AXor64,
    AFetchAdd32, AFetchAdd64, AFetchOr32, AFetchOr64, AFetchAnd32, AFetchAnd64,
    AFetchXor32, AFetchXor64, AXchg32, AXchg64, ACmpxchg32, ACmpxchg64,
    LdAcqB, LdAcqH, LdAcqW, LdAcqDW, StRelB, StRelH, StRelW, StRelDW,
    LdImm64, CallHelper, CallLocal, Callx, TailCall, TailCallVerified, Exit, MayGoto, CallKfunc,
    // Fused pairs (`fuse.rs`): the op, then the next slot's op.
    AddI64JeqI, AddI64JneI, AddI64JltI, AddI64JleI, AddI64JgtI, AddI64JgeI,
    MovR64AddI64, MovI64Exit,
}
