namespace Pop3Functional.Core

open System
open System.Globalization
open System.Text

/// SASLprep (RFC 4013): the stringprep profile (RFC 3454) that SCRAM applies to user names and
/// passwords (RFC 5802 §2.2, §5.1), as a "query" string: unassigned code points are allowed
/// (RFC 3454 §7). Normalisation is .NET's NFKC, whose Unicode version is newer than RFC 3454's 3.2;
/// for characters assigned since, the bidi categories below are approximated from the Unicode
/// category and script block (noted where it applies).
[<RequireQualifiedAccess>]
module SaslPrep =
    /// Non-ASCII spaces (RFC 3454 C.1.2), mapped to SPACE (RFC 4013 §2.1).
    let private isNonAsciiSpace (c: int) =
        match c with
        | 0x00A0
        | 0x1680
        | 0x202F
        | 0x205F
        | 0x3000 -> true
        | _ -> c >= 0x2000 && c <= 0x200B

    /// "Commonly mapped to nothing" (RFC 3454 B.1), removed (RFC 4013 §2.1).
    let private isMappedToNothing (c: int) =
        match c with
        | 0x00AD
        | 0x034F
        | 0x1806
        | 0x2060
        | 0xFEFF -> true
        | _ ->
            (c >= 0x180B && c <= 0x180D)
            || (c >= 0x200B && c <= 0x200D)
            || (c >= 0xFE00 && c <= 0xFE0F)

    let private within (ranges: (int * int) list) (c: int) =
        ranges |> List.exists (fun (low, high) -> c >= low && c <= high)

    /// Prohibited output (RFC 4013 §2.3): RFC 3454 C.1.2, C.2.1, C.2.2, C.3–C.9.
    let private prohibited =
        [
            0x0000, 0x001F // C.2.1
            0x007F, 0x009F // C.2.1, C.2.2
            0x00A0, 0x00A0 // C.1.2
            0x0340, 0x0341 // C.8
            0x06DD, 0x06DD // C.2.2
            0x070F, 0x070F
            0x1680, 0x1680 // C.1.2
            0x180E, 0x180E // C.2.2
            0x2000, 0x200F // C.1.2, C.2.2, C.8
            0x2028, 0x202F // C.2.2, C.8, C.1.2
            0x205F, 0x2063 // C.1.2, C.2.2
            0x206A, 0x206F // C.2.2, C.8
            0x2FF0, 0x2FFB // C.7
            0x3000, 0x3000 // C.1.2
            0xD800, 0xDFFF // C.5
            0xE000, 0xF8FF // C.3
            0xFDD0, 0xFDEF // C.4
            0xFEFF, 0xFEFF // C.2.2
            0xFFF9, 0xFFFD // C.2.2, C.6
            0x1D173, 0x1D17A // C.2.2
            0xE0001, 0xE0001 // C.9
            0xE0020, 0xE007F // C.9
            0xF0000, 0xFFFFD // C.3
            0x100000, 0x10FFFD // C.3
        ]

    let private isProhibited (c: int) =
        // C.4: the last two code points of every plane are non-characters.
        within prohibited c || (c &&& 0xFFFE) = 0xFFFE

    /// RandALCat (RFC 3454 D.1): characters of right-to-left scripts.
    let private randAL =
        [
            0x05BE, 0x05BE
            0x05C0, 0x05C0
            0x05C3, 0x05C3
            0x05D0, 0x05EA
            0x05F0, 0x05F4
            0x061B, 0x061B
            0x061F, 0x061F
            0x0621, 0x063A
            0x0640, 0x064A
            0x066D, 0x066F
            0x0671, 0x06D5
            0x06DD, 0x06DD
            0x06E5, 0x06E6
            0x06FA, 0x06FE
            0x0700, 0x070D
            0x0710, 0x0710
            0x0712, 0x072C
            0x0780, 0x07A5
            0x07B1, 0x07B1
            0x200F, 0x200F
            0xFB1D, 0xFB1D
            0xFB1F, 0xFB28
            0xFB2A, 0xFB36
            0xFB38, 0xFB3C
            0xFB3E, 0xFB3E
            0xFB40, 0xFB41
            0xFB43, 0xFB44
            0xFB46, 0xFBB1
            0xFBD3, 0xFD3D
            0xFD50, 0xFD8F
            0xFD92, 0xFDC7
            0xFDF0, 0xFDFC
            0xFE70, 0xFE74
            0xFE76, 0xFEFC
        ]

    /// Blocks of right-to-left scripts: a letter in them is never LCat, even when Unicode assigned
    /// it after 3.2 (so it is missing from D.1).
    let private rightToLeftBlocks =
        [
            0x0590, 0x08FF
            0xFB1D, 0xFDFF
            0xFE70, 0xFEFF
            0x10800, 0x10FFF
            0x1E800, 0x1EFFF
        ]

    /// LCat (RFC 3454 D.2), approximated: a letter or spacing mark outside right-to-left blocks.
    /// D.2 lists exactly the Unicode 3.2 characters of bidi category L, which are these.
    let private isLCat (c: int) =
        if within rightToLeftBlocks c then
            false
        else
            match CharUnicodeInfo.GetUnicodeCategory c with
            | UnicodeCategory.UppercaseLetter
            | UnicodeCategory.LowercaseLetter
            | UnicodeCategory.TitlecaseLetter
            | UnicodeCategory.ModifierLetter
            | UnicodeCategory.OtherLetter
            | UnicodeCategory.SpacingCombiningMark -> true
            | _ -> false

    /// The code points of a string, or None when it holds a lone surrogate (C.5).
    let private codePoints (s: string) =
        let points = ResizeArray<int>(s.Length)
        let mutable at = 0
        let mutable ok = true

        while ok && at < s.Length do
            match Rune.DecodeFromUtf16(s.AsSpan at) with
            | Buffers.OperationStatus.Done, rune, used ->
                points.Add rune.Value
                at <- at + used
            | _ -> ok <- false

        if ok then Some points else None

    let private fromCodePoints (points: int seq) =
        let sb = StringBuilder()

        for p in points do
            sb.Append(Rune(p).ToString()) |> ignore

        sb.ToString()

    /// RFC 3454 §6: a string with any RandALCat character holds no LCat character and starts and
    /// ends with a RandALCat character.
    let private bidiOk (points: ResizeArray<int>) =
        let isRandAL = within randAL

        if not (points.Exists(fun c -> isRandAL c)) then
            true
        else
            not (points.Exists(fun c -> isLCat c))
            && isRandAL points[0]
            && isRandAL points[points.Count - 1]

    /// The prepared string, or the reason it cannot be prepared (a prohibited character, a bidi
    /// violation, a lone surrogate). Never throws.
    let prepare (value: string) : Result<string, string> =
        if isNull value then
            Error "the string is missing (null)"
        else
            match codePoints value with
            | None -> Error "the string holds a lone surrogate, which is not a character (RFC 3454 C.5)"
            | Some points ->
                // RFC 4013 §2.1 mapping, before any check.
                let mapped =
                    points
                    |> Seq.filter (isMappedToNothing >> not)
                    |> Seq.map (fun c -> if isNonAsciiSpace c then 0x20 else c)
                    |> Array.ofSeq

                // Checked before NFKC as well: .NET's normaliser throws on some prohibited code points.
                if mapped |> Array.exists isProhibited then
                    Error "the string holds a prohibited character (RFC 4013 §2.3)"
                else
                    // RFC 4013 §2.2.
                    let normalized =
                        try
                            Some((fromCodePoints mapped).Normalize NormalizationForm.FormKC)
                        with :? ArgumentException ->
                            None

                    match normalized |> Option.bind codePoints with
                    | None -> Error "the string cannot be normalised (NFKC)"
                    | Some output when output.Exists(fun c -> isProhibited c) ->
                        Error "the string holds a prohibited character after normalisation (RFC 4013 §2.3)"
                    | Some output when not (bidiOk output) ->
                        Error "the string mixes right-to-left and left-to-right text (RFC 3454 §6)"
                    | Some _ -> Ok normalized.Value
