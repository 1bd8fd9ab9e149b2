namespace Pop3Functional.Core

open System
open System.Text

/// Byte constants and span helpers shared by the framer, the body decoder and the encoders.
[<RequireQualifiedAccess>]
module Bytes =
    /// Carriage return (0x0D): the first octet of the CRLF line end (RFC 1939 §3).
    [<Literal>]
    let CR = 13uy

    /// Line feed (0x0A): ends every line; without a CR before it, a bare LF (Quirk.BareLineFeed).
    [<Literal>]
    let LF = 10uy

    /// "." (0x2E): byte-stuffs lines of a multi-line reply and, alone on a line, ends it (RFC 1939 §3).
    [<Literal>]
    let Dot = 46uy

    /// The single space that separates a keyword from its arguments and the fields of a reply (RFC 1939 §3).
    [<Literal>]
    let Space = 32uy

    /// NUL (0x00): never allowed in a command or a status line.
    [<Literal>]
    let Nul = 0uy

    /// CRLF as a static array; slices of it are handed out instead of copies.
    let crlf: byte[] = [| CR; LF |]

    /// A lone CR, handed out when a held "." + CR turns out to be data (RFC 1939 §3 unstuffing).
    let cr: byte[] = [| CR |]

    /// The two-octet sequence that can start a stuffed line or the terminator of a multi-line reply.
    let lfDot: byte[] = [| LF; Dot |]

    /// CRLF and a dot: a line starting with "." when only CRLF ends lines.
    let crlfDot: byte[] = [| CR; LF; Dot |]

    /// Encodes protocol text (keywords, numbers, base64) as ASCII; non-ASCII chars become "?".
    let ascii (s: string) : byte[] = Encoding.ASCII.GetBytes s

    /// Decodes protocol text as Latin-1 so that every byte maps to one char and nothing throws.
    let latin1 (bytes: ReadOnlySpan<byte>) : string = Encoding.Latin1.GetString bytes

    /// Encodes command text as UTF-8 (identical to ASCII for ASCII text), for UTF-8 user names (RFC 6856).
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
