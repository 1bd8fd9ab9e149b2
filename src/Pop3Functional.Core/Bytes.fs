namespace Pop3Functional.Core

open System
open System.Text

/// Byte constants and span helpers shared by the framer, the body decoder and the encoders.
[<RequireQualifiedAccess>]
module Bytes =
    [<Literal>]
    let CR = 13uy

    [<Literal>]
    let LF = 10uy

    [<Literal>]
    let Dot = 46uy

    [<Literal>]
    let Space = 32uy

    [<Literal>]
    let Nul = 0uy

    /// CRLF as a static array; slices of it are handed out instead of copies.
    let crlf: byte[] = [| CR; LF |]

    /// A lone CR, handed out when a held "." + CR turns out to be data (RFC 1939 §3 unstuffing).
    let cr: byte[] = [| CR |]

    /// The two-octet sequence that can start a stuffed line or the terminator of a multi-line reply.
    let lfDot: byte[] = [| LF; Dot |]

    let ascii (s: string) : byte[] = Encoding.ASCII.GetBytes s

    /// Decodes protocol text as Latin-1 so that every byte maps to one char and nothing throws.
    let latin1 (bytes: ReadOnlySpan<byte>) : string = Encoding.Latin1.GetString bytes

    let utf8 (s: string) : byte[] = Encoding.UTF8.GetBytes s

    /// True when the span holds a CR, LF or NUL: bytes that must never reach a command line.
    let hasLineBreakOrNul (s: string) =
        s.AsSpan().IndexOfAny('\r', '\n', '\000') >= 0

    /// C0, DEL and C1 controls (0x9B is a one-byte CSI on some terminals), and the bidi
    /// embedding, override and isolate marks that reorder displayed text (CVE-2021-42574).
    let private isUnsafe (c: char) =
        Char.IsControl c
        || c = '\u200E'
        || c = '\u200F'
        || c = '\u061C'
        || (c >= '\u202A' && c <= '\u202E')
        || (c >= '\u2066' && c <= '\u2069')

    /// Escapes control characters so server text can be logged or shown without side effects.
    let escapeControls (s: string) =
        if s |> Seq.forall (fun c -> not (isUnsafe c)) then
            s
        else
            let sb = StringBuilder(s.Length + 8)

            for c in s do
                if c < '\u0100' && isUnsafe c then
                    sb.Append("\\x").Append((int c).ToString("x2")) |> ignore
                elif isUnsafe c then
                    sb.Append("\\u").Append((int c).ToString("x4")) |> ignore
                else
                    sb.Append c |> ignore

            sb.ToString()
