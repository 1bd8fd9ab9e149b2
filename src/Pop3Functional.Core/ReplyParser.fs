namespace Pop3Functional.Core

open System
open System.Text

/// A parse outcome: the value and the quirks it needed, or the kind of violation and why.
type Parsed<'T> = Result<struct ('T * Quirk list), struct (ProtocolErrorKind * string)>

/// The reply grammars of RFC 1939, 2449, 3206 and 6856. Every function takes one line without its
/// line end, never throws, and parses numbers as unsigned 64-bit with overflow as an error.
[<RequireQualifiedAccess>]
module ReplyParser =
    let private fail kind reason : Parsed<'T> = Error(struct (kind, reason))
    let private okq value quirks : Parsed<'T> = Ok(struct (value, quirks))

    /// Decodes protocol text: UTF-8 once UTF8 is in force (RFC 6856), else Latin-1 (one char a byte).
    let decode (utf8: bool) (bytes: ReadOnlySpan<byte>) =
        if utf8 then
            Encoding.UTF8.GetString bytes
        else
            Bytes.latin1 bytes

    let private maxInt31 = 2147483647UL

    /// Parses 1*DIGIT as an unsigned 64-bit number; anything else (sign, hex, overflow) is None.
    let tryParseNumber (s: ReadOnlySpan<byte>) : uint64 voption =
        if s.Length = 0 then
            ValueNone
        else
            let mutable acc = 0UL
            let mutable ok = true
            let mutable i = 0

            while ok && i < s.Length do
                let d = int s[i] - 48

                if d < 0 || d > 9 then
                    ok <- false
                elif acc > (UInt64.MaxValue - uint64 d) / 10UL then
                    ok <- false
                else
                    acc <- acc * 10UL + uint64 d

                i <- i + 1

            if ok then ValueSome acc else ValueNone

    /// Parses a number field; a value above 2^31-1 is legal and returns the NumbersAbove2Pow31 report.
    let number (allowed: Set<Quirk>) (what: string) (s: ReadOnlySpan<byte>) : Parsed<uint64> =
        match tryParseNumber s with
        | ValueNone ->
            let allDigits = s.Length > 0 && s.IndexOfAnyExceptInRange(48uy, 57uy) < 0

            if allDigits then
                fail ProtocolErrorKind.BadNumber $"the {what} {Err.quote (Bytes.latin1 s)} does not fit in 64 bits"
            else
                fail ProtocolErrorKind.BadNumber $"the {what} {Err.quote (Bytes.latin1 s)} is not a decimal number"
        // Legal (DESIGN §12: numbers up to 2^64-1); reported, because MailKit and others fail here.
        | ValueSome v when v > maxInt31 -> okq v [ Quirk.NumbersAbove2Pow31 ]
        | ValueSome v -> okq v []

    /// Splits a line into space-separated fields; several spaces in a row need ExtraSpaces.
    /// Returns at most maxFields fields; the last one takes the rest of the line.
    let fields (allowed: Set<Quirk>) (line: ReadOnlySpan<byte>) (maxFields: int) : Parsed<struct (int * int) list> =
        let result = ResizeArray<struct (int * int)>(maxFields)
        let mutable quirks = []
        let mutable error = None
        let mutable i = 0

        // Leading spaces ("+OK  2 320") are extra spaces too.
        while i < line.Length && line[i] = Bytes.Space do
            i <- i + 1

        if i > 0 then
            if allowed.Contains Quirk.ExtraSpaces then
                quirks <- [ Quirk.ExtraSpaces ]
            else
                error <- Some "spaces before the first field"

        while error.IsNone && i < line.Length do
            if result.Count = maxFields - 1 then
                result.Add(struct (i, line.Length - i))
                i <- line.Length
            else
                let rest = line.Slice i
                let sp = rest.IndexOf Bytes.Space
                let len = if sp < 0 then rest.Length else sp
                result.Add(struct (i, len))
                i <- i + len

                if sp >= 0 then
                    let mutable spaces = 0

                    while i < line.Length && line[i] = Bytes.Space do
                        spaces <- spaces + 1
                        i <- i + 1

                    if spaces > 1 || i = line.Length then
                        if allowed.Contains Quirk.ExtraSpaces then
                            quirks <- [ Quirk.ExtraSpaces ]
                        else
                            error <- Some "several spaces (or a trailing space) between fields"

        match error with
        | Some e -> fail ProtocolErrorKind.BadListing e
        | None -> okq (List.ofSeq result) quirks

    let private isRespLevelChar (c: char) = Char.IsAsciiLetterOrDigit c || c = '-'

    /// resp-code = "[" resp-level *("/" resp-level) "]" (RFC 2449 §3).
    let private tryResponseCode (text: string) =
        if text.Length > 2 && text[0] = '[' then
            let close = text.IndexOf ']'

            if close > 1 then
                let inner = text.Substring(1, close - 1)
                let levels = inner.Split '/'

                if levels |> Array.forall (fun l -> l.Length > 0 && Seq.forall isRespLevelChar l) then
                    let rest = text.Substring(close + 1)
                    let rest = if rest.StartsWith ' ' then rest.Substring 1 else rest
                    Some(ResponseCode.Parse inner, rest)
                else
                    None
            else
                None
        else
            None

    let private startsWithAscii (line: ReadOnlySpan<byte>) (prefix: string) (ignoreCase: bool) =
        if line.Length < prefix.Length then
            false
        else
            let mutable ok = true

            for i in 0 .. prefix.Length - 1 do
                let b = char line[i]
                let p = prefix[i]

                if not (b = p || (ignoreCase && Char.ToUpperInvariant b = p)) then
                    ok <- false

            ok

    /// Parses "+OK [text]" or "-ERR [text]", with an optional response code (RFC 1939 §3, RFC 2449 §8).
    /// "+ERR" and any other status are errors, never success (hmailserver#590).
    let statusLine (allowed: Set<Quirk>) (utf8: bool) (line: ReadOnlySpan<byte>) : Parsed<StatusLine> =
        let found =
            if startsWithAscii line "+OK" false then
                Some(true, 3, [])
            elif startsWithAscii line "-ERR" false then
                Some(false, 4, [])
            elif startsWithAscii line "+OK" true then
                Some(true, 3, [ Quirk.LowercaseStatus ])
            elif startsWithAscii line "-ERR" true then
                Some(false, 4, [ Quirk.LowercaseStatus ])
            else
                None

        match found with
        | None ->
            fail
                ProtocolErrorKind.BadStatusLine
                $"expected +OK or -ERR, got {Err.quote (Bytes.latin1 (line.Slice(0, min line.Length 120)))}"
        | Some(_, _, q) when not q.IsEmpty && not (allowed.Contains Quirk.LowercaseStatus) ->
            fail
                ProtocolErrorKind.BadStatusLine
                $"lowercase status {Err.quote (Bytes.latin1 (line.Slice(0, min line.Length 120)))} and that quirk is not enabled"
        | Some(isOk, len, q) ->
            if line.Length = len then
                // Legal (RFC 1939's own NOOP example; DESIGN §12); reported when the option asks.
                okq { IsOk = isOk; Code = None; Text = "" } (Quirk.EmptyStatusText :: q)
            elif line[len] <> Bytes.Space then
                fail
                    ProtocolErrorKind.BadStatusLine
                    $"expected +OK or -ERR, got {Err.quote (Bytes.latin1 (line.Slice(0, min line.Length 120)))}"
            else
                let text = decode utf8 (line.Slice(len + 1))

                match tryResponseCode text with
                | Some(code, rest) ->
                    okq
                        {
                            IsOk = isOk
                            Code = Some code
                            Text = rest
                        }
                        q
                | None ->
                    okq
                        {
                            IsOk = isOk
                            Code = None
                            Text = text
                        }
                        q

    /// True when a line starts with "-ERR" (any case): a refusal, whatever follows.
    let isErr (line: ReadOnlySpan<byte>) = startsWithAscii line "-ERR" true

    /// True when a line is a SASL continuation: "+" alone (Exchange) or "+ " and data (RFC 5034 §4).
    let isContinuation (line: ReadOnlySpan<byte>) =
        line.Length >= 1
        && line[0] = byte '+'
        && (line.Length = 1 || line[1] = Bytes.Space)

    /// Finds a strict APOP timestamp anywhere in the greeting text (MailKit#529), in linear time
    /// (CPython CVE-2018-1060): "<" local "@" domain ">" of printable ASCII with exactly one "@",
    /// at most 255 characters.
    let apopTimestamp (text: string) : string option =
        let valid (candidate: string) =
            candidate.Length >= 5
            && candidate.Length <= 255
            && candidate |> Seq.forall (fun c -> c >= '!' && c <= '~')
            && (candidate |> Seq.filter (fun c -> c = '@') |> Seq.length) = 1
            && candidate[1] <> '@'
            && candidate[candidate.Length - 2] <> '@'

        let mutable from = 0
        let mutable result = None

        while result.IsNone && from < text.Length do
            let close = text.IndexOf('>', from)

            if close < 0 then
                from <- text.Length
            else
                // Search back only to `from`: a '<' before it was already paired with an earlier '>',
                // and rescanning it for every '>' would make the search quadratic.
                let openAt = text.LastIndexOf('<', close, close - from + 1)

                // "<a<b@c>": the msg-id is nested in an unclosed "<"; no APOP (CVE-2007-1558).
                if openAt >= from && text.IndexOf('<', from) = openAt then
                    let candidate = text.Substring(openAt, close - openAt + 1)

                    if valid candidate then
                        result <- Some candidate

                from <- close + 1

        result

    /// Parses the answer to STAT: "+OK nn mm" with optional text after (RFC 1939 §5).
    let stat (allowed: Set<Quirk>) (line: ReadOnlySpan<byte>) : Parsed<MaildropStat> =
        // line is the part after "+OK ".
        match fields allowed line 3 with
        | Error e -> Error e
        | Ok(struct (fs, q0)) ->
            match fs with
            | struct (a, al) :: struct (b, bl) :: _ ->
                match number allowed "message count" (line.Slice(a, al)) with
                | Error e -> Error e
                | Ok(struct (count, q1)) ->
                    match number allowed "maildrop size" (line.Slice(b, bl)) with
                    | Error e -> Error e
                    | Ok(struct (octets, q2)) -> okq { Count = count; Octets = octets } (q0 @ q1 @ q2)
            | _ ->
                fail ProtocolErrorKind.BadNumber $"STAT needs a count and a size, got {Err.quote (Bytes.latin1 line)}"

    /// Parses "n size [more]" from a LIST answer or listing line (RFC 1939 §5).
    let listEntry (allowed: Set<Quirk>) (line: ReadOnlySpan<byte>) : Parsed<ListEntry> =
        match fields allowed line 3 with
        | Error e -> Error e
        | Ok(struct (fs, q0)) ->
            match fs with
            | struct (a, al) :: struct (b, bl) :: _ ->
                match number allowed "message number" (line.Slice(a, al)) with
                | Error e -> Error e
                | Ok(struct (n, q1)) ->
                    match number allowed "message size" (line.Slice(b, bl)) with
                    | Error e -> Error e
                    | Ok(struct (size, q2)) -> okq { Number = n; Octets = size } (q0 @ q1 @ q2)
            | _ ->
                fail
                    ProtocolErrorKind.BadListing
                    $"a LIST line needs a number and a size, got {Err.quote (Bytes.latin1 line)}"

    /// Parses "n uid" from a UIDL answer or listing line (RFC 1939 §7).
    let uidEntry (allowed: Set<Quirk>) (line: ReadOnlySpan<byte>) : Parsed<UidEntry> =
        match fields allowed line 3 with
        | Error e -> Error e
        | Ok(struct (fs, q0)) ->
            match fs with
            | struct (a, al) :: struct (b, bl) :: rest ->
                match number allowed "message number" (line.Slice(a, al)) with
                | Error e -> Error e
                | Ok(struct (n, q1)) ->
                    let uid = Bytes.latin1 (line.Slice(b, bl))

                    if not rest.IsEmpty then
                        fail
                            ProtocolErrorKind.BadUid
                            $"a UIDL line has text after the UID: {Err.quote (Bytes.latin1 line)}"
                    else
                        match MessageUid.TryCreate uid with
                        | Some u -> okq { Number = n; Uid = u } (q0 @ q1)
                        | None when
                            allowed.Contains Quirk.LongUids
                            && uid.Length > 70
                            && uid |> Seq.forall (fun c -> c >= '!' && c <= '~')
                            ->
                            okq
                                {
                                    Number = n
                                    Uid = MessageUid.CreateUnchecked uid
                                }
                                (Quirk.LongUids :: q0 @ q1)
                        | None ->
                            fail
                                ProtocolErrorKind.BadUid
                                $"the UID {Err.quote uid} is not 1 to 70 printable ASCII characters (RFC 1939 §7)"
            | _ ->
                fail
                    ProtocolErrorKind.BadUid
                    $"a UIDL line needs a number and a UID, got {Err.quote (Bytes.latin1 line)}"

    /// Parses one LANG listing line: "tag SP description" (RFC 6856 §3).
    let languageEntry (utf8: bool) (line: ReadOnlySpan<byte>) : Parsed<LanguageEntry> =
        let text = decode utf8 line
        let sp = text.IndexOf ' '

        if text.Length = 0 then
            fail ProtocolErrorKind.BadListing "an empty LANG line"
        elif sp < 0 then
            okq { Tag = text; Description = "" } []
        else
            okq
                {
                    Tag = text.Substring(0, sp)
                    Description = text.Substring(sp + 1)
                }
                []

    /// Adds one CAPA line to the capabilities (RFC 2449 §5–6); unknown or malformed ones are kept in Other.
    let capabilityLine (caps: Capabilities) (text: string) : Capabilities =
        let parts = text.Split(' ', StringSplitOptions.RemoveEmptyEntries)

        let caps =
            { caps with
                Lines = caps.Lines @ [ text ]
            }

        if parts.Length = 0 then
            caps
        else
            let tag = parts[0]
            let args = List.ofArray parts[1..]

            let other () =
                { caps with
                    Other = caps.Other @ [ tag, args ]
                }

            let num (s: string) =
                tryParseNumber (ReadOnlySpan(Encoding.ASCII.GetBytes s))

            match tag.ToUpperInvariant(), args with
            | "TOP", [] -> { caps with Top = true }
            | "USER", [] -> { caps with User = true }
            | "SASL", mechs -> { caps with Sasl = caps.Sasl @ mechs }
            | "RESP-CODES", [] -> { caps with RespCodes = true }
            | "AUTH-RESP-CODE", [] -> { caps with AuthRespCode = true }
            | "PIPELINING", [] -> { caps with Pipelining = true }
            | "UIDL", [] -> { caps with Uidl = true }
            | "STLS", [] -> { caps with Stls = true }
            | "LANG", [] -> { caps with Lang = true }
            | "UTF8", [] -> { caps with Utf8 = Some false }
            | "UTF8", [ u ] when u.Equals("USER", StringComparison.OrdinalIgnoreCase) -> { caps with Utf8 = Some true }
            | "IMPLEMENTATION", _ :: _ ->
                let impl = text.Substring(text.IndexOf(' ') + 1).Trim()
                { caps with Implementation = Some impl }
            | "LOGIN-DELAY", [ n ] ->
                match num n with
                | ValueSome s ->
                    { caps with
                        LoginDelay = Some { Seconds = s; PerUser = false }
                    }
                | ValueNone -> other ()
            | "LOGIN-DELAY", [ n; u ] when u.Equals("USER", StringComparison.OrdinalIgnoreCase) ->
                match num n with
                | ValueSome s ->
                    { caps with
                        LoginDelay = Some { Seconds = s; PerUser = true }
                    }
                | ValueNone -> other ()
            | "EXPIRE", (v :: rest) when
                (match rest with
                 | [] -> true
                 | [ u ] -> u.Equals("USER", StringComparison.OrdinalIgnoreCase)
                 | _ -> false)
                ->
                let perUser = not rest.IsEmpty

                if v.Equals("NEVER", StringComparison.OrdinalIgnoreCase) then
                    { caps with
                        Expire = Some { Days = None; PerUser = perUser }
                    }
                else
                    match num v with
                    | ValueSome d ->
                        { caps with
                            Expire = Some { Days = Some d; PerUser = perUser }
                        }
                    | ValueNone -> other ()
            | _ -> other ()
