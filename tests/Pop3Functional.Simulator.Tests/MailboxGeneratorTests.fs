module Pop3Functional.Simulator.Tests.MailboxGeneratorTests

open System
open System.Globalization
open System.Text
open System.Text.RegularExpressions
open Expecto
open FsCheck
open Pop3Functional.Simulator

let private propConfig n =
    { FsCheckConfig.defaultConfig with
        maxTest = n
    }

/// The kinds every mailbox of enough messages holds ("large" only with IncludeLarge).
let private mailboxKinds = MailboxGenerator.kinds |> List.filter ((<>) "large")

let private small =
    { GeneratorOptions.Default with
        Count = 40
        MaxSize = 32768L
    }

/// What is wrong with the line structure: a bare CR or LF, a line over 998 octets, a missing final
/// CRLF, a length other than announced. Reads in pieces, so the large message is never one array.
let private lineProblems (content: MessageContent) =
    let problems = ResizeArray<string>()
    let buffer = Array.zeroCreate<byte> 65536
    let mutable offset = 0L
    let mutable line = 0
    let mutable afterCr = false
    let mutable last = 0uy
    let mutable go = true

    while go do
        let n = content.CopyTo(offset, Span buffer)

        if n = 0 then
            go <- false
        else
            for i in 0 .. n - 1 do
                let b = buffer[i]

                if afterCr && b <> 10uy then
                    problems.Add $"bare CR at {offset + int64 i - 1L}"

                if b = 10uy then
                    if not afterCr then
                        problems.Add $"bare LF at {offset + int64 i}"

                    if line > 998 then
                        problems.Add $"a line of {line} octets before {offset + int64 i}"

                    line <- 0
                elif b <> 13uy then
                    line <- line + 1

                afterCr <- b = 13uy
                last <- b

            offset <- offset + int64 n

    if offset <> content.Length then
        problems.Add $"read {offset} octets of {content.Length}"

    if offset > 0L && (last <> 10uy || line <> 0) then
        problems.Add "no final CRLF"

    List.ofSeq problems

/// The header section including the CRLF of its last line, or None without an empty line.
let private headerSection (bytes: byte[]) =
    match bytes.AsSpan().IndexOf("\r\n\r\n"B) with
    | -1 -> None
    | i -> Some bytes[.. i + 1]

let private headerOf (m: GeneratedMessage) =
    match headerSection (m.Content.ToArray()) with
    | Some h -> h
    | None -> failtestf "%s (%s) has no empty line after its headers" m.Uid m.Kind

/// Header fields, unfolded (RFC 5322 §2.2.3), as lower-case name and value.
let private fields (header: byte[]) =
    let text = Regex.Replace(Encoding.UTF8.GetString header, "\r\n(?=[ \t])", "")

    text.Split("\r\n", StringSplitOptions.RemoveEmptyEntries)
    |> Array.map (fun f ->
        let colon = f.IndexOf ':'
        f.Substring(0, colon).ToLowerInvariant(), f.Substring(colon + 1).Trim())
    |> List.ofArray

let private field name (m: GeneratedMessage) =
    fields (headerOf m) |> List.tryFind (fst >> (=) name) |> Option.map snd

let private textOf (m: GeneratedMessage) =
    Encoding.UTF8.GetString(m.Content.ToArray())

/// The lines without their CRLF (the text ends with CRLF, so the last split piece is empty).
let private linesOf (m: GeneratedMessage) =
    let pieces = (textOf m).Split("\r\n")
    pieces[.. pieces.Length - 2]

/// RFC 2047 §6.2: decodes B and Q words, dropping the whitespace between adjacent words.
let private decodeWords (value: string) =
    let joined = Regex.Replace(value, @"\?=\s+=\?", "?==?")

    Regex.Replace(
        joined,
        @"=\?([^?]+)\?([BbQq])\?([^?]*)\?=",
        fun m ->
            let encoding = Encoding.GetEncoding m.Groups[1].Value
            let data = m.Groups[3].Value

            let bytes =
                if m.Groups[2].Value.ToUpperInvariant() = "B" then
                    Convert.FromBase64String data
                else
                    let q = data.Replace('_', ' ')

                    [|
                        let mutable i = 0

                        while i < q.Length do
                            if q[i] = '=' then
                                yield Convert.ToByte(q.Substring(i + 1, 2), 16)
                                i <- i + 3
                            else
                                yield byte q[i]
                                i <- i + 1
                    |]

            encoding.GetString bytes
    )

/// Every base64 part: its header lines and its body lines.
let private base64Parts (m: GeneratedMessage) =
    let lines = linesOf m

    [
        for i in 0 .. lines.Length - 1 do
            if lines[i] = "Content-Transfer-Encoding: base64" then
                let start = Array.findIndex String.IsNullOrEmpty lines[i..] + i + 1

                let stop =
                    Array.findIndex (fun (l: string) -> l.StartsWith "--") lines[start..] + start

                let partStart =
                    Array.findIndexBack (fun (l: string) -> l.StartsWith "--") lines[..i] + 1

                yield lines[partStart .. start - 2], lines[start .. stop - 1]
    ]

let private isAscii (bytes: byte[]) =
    bytes |> Array.forall (fun b -> b < 0x80uy)

let private validUid (uid: string) =
    uid.Length >= 1
    && uid.Length <= 70
    && uid |> Seq.forall (fun c -> c >= '!' && c <= '~')

let private withinBounds (options: GeneratorOptions) (m: GeneratedMessage) =
    m.Kind = "large"
    || (m.Content.Length >= int64 options.MinSize && m.Content.Length <= options.MaxSize)

let private rfc5322Date =
    Regex
        @"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) 202[4-6] \d\d:\d\d:\d\d [+-]\d{4}$"

[<Tests>]
let tests =
    testList
        "MailboxGenerator"
        [
            test "the same options give byte-identical messages and UIDs" {
                let a = MailboxGenerator.generate small
                let b = MailboxGenerator.generate small
                Expect.equal (a |> List.map _.Uid) (b |> List.map _.Uid) "UIDs"
                Expect.equal (a |> List.map _.Kind) (b |> List.map _.Kind) "kinds"

                Expect.equal
                    (a |> List.map (fun m -> m.Content.ToArray()))
                    (b |> List.map (fun m -> m.Content.ToArray()))
                    "bytes"
            }

            test "a different seed gives different messages and UIDs" {
                let a = MailboxGenerator.generate small
                let b = MailboxGenerator.generate { small with Seed = 2 }
                Expect.notEqual (a |> List.map _.Uid) (b |> List.map _.Uid) "UIDs"

                Expect.notEqual
                    (a |> List.map (fun m -> m.Content.ToArray()))
                    (b |> List.map (fun m -> m.Content.ToArray()))
                    "bytes"
            }

            test
                "every message has CRLF line ends only, lines of at most 998 octets, a final CRLF and the usual headers" {
                let messages = MailboxGenerator.generate GeneratorOptions.Default
                Expect.equal messages.Length 200 "count"

                for m in messages do
                    Expect.equal (lineProblems m.Content) [] $"{m.Uid} ({m.Kind})"
                    let names = fields (headerOf m) |> List.map fst

                    for name in [ "from"; "to"; "subject"; "date"; "message-id" ] do
                        Expect.contains names name $"{m.Uid} ({m.Kind}) has {name}"
            }

            test "UIDs are unique, 1 to 70 characters in 0x21..0x7E, in Dovecot's number-and-validity style" {
                let messages = MailboxGenerator.generate GeneratorOptions.Default
                let uids = messages |> List.map _.Uid
                Expect.equal (List.distinct uids) uids "unique"
                Expect.all uids validUid "valid"
                Expect.equal (uids[0].Substring(0, 8)) "00000001" "the message number first"
                Expect.equal (uids[199].Substring(0, 8)) "000000C8" "in order"
            }

            test "Message-IDs are unique and Dates are RFC 5322 from the fixed epoch" {
                let messages = MailboxGenerator.generate GeneratorOptions.Default
                let ids = messages |> List.choose (field "message-id")
                Expect.equal ids.Length messages.Length "every message"
                Expect.equal (List.distinct ids) ids "unique"

                let instants =
                    messages
                    |> List.map (fun m ->
                        let date = field "date" m |> Option.defaultValue ""
                        Expect.isTrue (rfc5322Date.IsMatch date) $"{m.Uid}: {date}"
                        // ParseExact also checks that the day name matches the date.
                        let zone = date.Substring(date.Length - 5).Insert(3, ":")

                        DateTimeOffset.ParseExact(
                            date.Substring(0, date.Length - 5) + zone,
                            "ddd, dd MMM yyyy HH:mm:ss zzz",
                            CultureInfo.InvariantCulture
                        ))

                Expect.equal instants (List.sort instants) "in delivery order"
            }

            test "each kind is present in mailboxes of 20, whatever the seed" {
                for seed in 1..25 do
                    let messages =
                        MailboxGenerator.generate
                            { GeneratorOptions.Default with
                                Seed = seed
                                Count = 20
                                MaxSize = 8192L
                            }

                    let present = messages |> List.map _.Kind |> Set.ofList
                    Expect.equal messages.Length 20 "count"

                    for kind in mailboxKinds do
                        Expect.contains present kind $"seed {seed}"

                    Expect.isFalse (present.Contains "large") "no large message unless asked for"
            }

            test "sizes stay within MinSize..MaxSize and most messages are small" {
                let options = GeneratorOptions.Default
                let messages = MailboxGenerator.generate options

                for m in messages do
                    Expect.isTrue (withinBounds options m) $"{m.Uid} ({m.Kind}) is {m.Content.Length} octets"

                let sizes = messages |> List.map _.Content.Length |> List.sort
                Expect.isLessThan sizes[sizes.Length / 2] (options.MaxSize / 4L) "median"
                Expect.isGreaterThan (List.last sizes) (options.MaxSize / 2L) "some large ones too"

                Expect.all
                    (messages |> List.filter (fun m -> m.Kind = "empty-body"))
                    (fun m -> m.Content.Length = int64 options.MinSize)
                    "empty bodies are MinSize"
            }

            test "small messages are byte arrays built once" {
                for m in MailboxGenerator.generate small do
                    Expect.isTrue (m.Content :? BytesContent) $"{m.Uid} ({m.Kind})"
            }

            test "the large message has the requested length, is well-formed and is not held in one array" {
                let options =
                    { small with
                        Count = 20
                        IncludeLarge = true
                    }

                let messages = MailboxGenerator.generate options
                let large = messages |> List.filter (fun m -> m.Kind = "large")
                Expect.equal large.Length 1 "one large message"
                let m = large.Head
                Expect.equal m.Content.Length options.LargeSize "length"
                Expect.isFalse (m.Content :? BytesContent) "not a byte array"
                Expect.equal (lineProblems m.Content) [] "read in pieces: well-formed, all octets"
                let head = Array.zeroCreate<byte> 4096
                let n = m.Content.CopyTo(0L, Span head)
                let names = fields (headerSection head[.. n - 1]).Value |> List.map fst

                for name in [ "from"; "to"; "subject"; "date"; "message-id" ] do
                    Expect.contains names name name

                for kind in mailboxKinds do
                    Expect.contains (messages |> List.map _.Kind) kind "the other kinds are still there"
            }

            test "large messages of any length end cleanly (Generated's bare-CR lengths are avoided)" {
                for size in 4096 .. 4096 + 2 * 78 do
                    let m = MailboxGenerator.message "large" 5 size
                    Expect.equal m.Content.Length (int64 size) "length"
                    Expect.equal (lineProblems m.Content) [] $"size {size}"
            }

            test "the 8bit-header kind has raw octets of 0x80 and above in its header section, in UTF-8" {
                let header = headerOf (MailboxGenerator.message "8bit-header" 1 5000)
                Expect.isFalse (isAscii header) "raw 8-bit"
                let strict = UTF8Encoding(false, true)
                Expect.isNotEmpty (strict.GetString header) "valid UTF-8"

                for m in MailboxGenerator.generate GeneratorOptions.Default do
                    if m.Kind <> "8bit-header" then
                        Expect.isTrue (isAscii (headerOf m)) $"{m.Uid} ({m.Kind}) has an ASCII header"
            }

            test "encoded words are B in UTF-8 and Q in ISO-8859-1, at most 75 characters, and decode" {
                for seed in 1..20 do
                    let m = MailboxGenerator.message "encoded-words" seed 5000
                    let from = (field "from" m).Value
                    let subject = (field "subject" m).Value
                    Expect.stringContains from "=?ISO-8859-1?Q?" "Q word"
                    Expect.stringContains subject "=?UTF-8?B?" "B word"

                    for w in Regex.Matches(textOf m, @"=\?[^?]+\?[BQ]\?[^?]*\?=") do
                        Expect.isLessThanOrEqual w.Value.Length 75 "RFC 2047 §2"

                    let display = decodeWords from
                    Expect.isTrue (display |> Seq.exists (fun c -> int c > 0x7F)) $"decoded From: {display}"
                    Expect.isFalse ((decodeWords subject).Contains "=?") "decoded Subject"
            }

            test "folded headers continue with spaces and tabs and unfold" {
                let m = MailboxGenerator.message "folded-headers" 3 5000
                let header = Encoding.ASCII.GetString(headerOf m)
                Expect.stringContains header "\r\n " "space continuation"
                Expect.stringContains header "\r\n\t" "tab continuation"
                Expect.stringStarts (field "subject" m).Value "A subject folded over three lines," "unfolded"
                Expect.equal (field "keywords" m) (Some "folding, headers, continuation") "after the colon"
            }

            test "dot-lines has a lone dot, a double dot and ends with a lone dot" {
                let lines = linesOf (MailboxGenerator.message "dot-lines" 4 5000)
                Expect.contains lines "." "lone dot"
                Expect.contains lines ".." "double dot"
                Expect.contains lines ".hidden" "dot first"
                Expect.equal (Array.last lines) "." "last line"
            }

            test "long-lines has lines of exactly 998 octets in the header and the body" {
                let m = MailboxGenerator.message "long-lines" 6 10000
                let lines = linesOf m
                let long = lines |> Array.filter (fun l -> l.Length = 998)
                Expect.isGreaterThanOrEqual long.Length 3 "998-octet lines"
                Expect.exists long (fun l -> l.StartsWith "X-Long-Header: ") "in the header"
                Expect.exists long (fun l -> l.StartsWith ".") "one starts with a dot"
                Expect.equal (lineProblems m.Content) [] "none longer"
            }

            test "the multipart-attachment kind's base64 decodes to its size, in 76-character lines" {
                for seed in 1..10 do
                    let m = MailboxGenerator.message "multipart-attachment" seed (3000 * seed)
                    Expect.stringStarts (field "content-type" m).Value "multipart/mixed;" "multipart/mixed"

                    match base64Parts m with
                    | [ headers, body ] ->
                        let size =
                            headers
                            |> Array.pick (fun h ->
                                let found = Regex.Match(h, @"; size=(\d+)$")

                                if found.Success then
                                    Some(int found.Groups[1].Value)
                                else
                                    None)

                        Expect.all body[.. body.Length - 2] (fun l -> l.Length = 76) "full lines"
                        Expect.isLessThanOrEqual (Array.last body).Length 76 "last line"
                        Expect.equal (Convert.FromBase64String(String.concat "" body)).Length size "decoded size"
                    | parts -> failtestf "expected one base64 part, got %d" parts.Length
            }

            test "the multipart-alternative kind nests multipart/related with an inline image that decodes" {
                let m = MailboxGenerator.message "multipart-alternative" 8 6000
                Expect.stringStarts (field "content-type" m).Value "multipart/alternative;" "outer"
                let text = textOf m
                let alternative = text.IndexOf "Content-Type: text/plain"
                let related = text.IndexOf "Content-Type: multipart/related"
                let html = text.IndexOf "Content-Type: text/html"
                Expect.isTrue (0 < alternative && alternative < related && related < html) "nesting order"

                match base64Parts m with
                | [ _, body ] ->
                    let image = Convert.FromBase64String(String.concat "" body)
                    Expect.equal image[..3] [| 0x89uy; 0x50uy; 0x4Euy; 0x47uy |] "PNG signature"
                | parts -> failtestf "expected one base64 part, got %d" parts.Length
            }

            test "the empty-body kind is headers, a blank line and nothing else" {
                for size in [ 0; 300; 4096; 5000 ] do
                    let m = MailboxGenerator.message "empty-body" 2 size
                    let bytes = m.Content.ToArray()
                    Expect.equal (headerSection bytes).Value.Length (bytes.Length - 2) "the first empty line is the end"
                    Expect.equal (lineProblems m.Content) [] "well-formed"

                    if size >= 4096 then
                        Expect.equal bytes.Length size "padded with header fields"
            }

            test "message is deterministic and refuses unknown kinds" {
                for kind in MailboxGenerator.kinds do
                    let a = MailboxGenerator.message kind 9 5000
                    let b = MailboxGenerator.message kind 9 5000
                    Expect.equal (a.Content.ToArray()) (b.Content.ToArray()) kind
                    Expect.equal a.Uid b.Uid kind
                    Expect.equal a.Kind kind kind
                    Expect.isTrue (validUid a.Uid) kind

                Expect.throwsT<ArgumentException>
                    (fun () -> MailboxGenerator.message "nonsense" 1 1000 |> ignore)
                    "unknown kind"
            }

            test "options out of range are refused" {
                let refused options =
                    Expect.throwsT<ArgumentException>
                        (fun () -> MailboxGenerator.generate options |> ignore)
                        $"%A{options}"

                refused { small with Count = -1 }
                refused { small with MinSize = -1 }
                refused { small with MaxSize = 1000L }
                refused { small with MinSize = 40000 }

                refused
                    { small with
                        MaxSize = MailboxGenerator.maximumSmallSize + 1L
                    }

                refused
                    { small with
                        IncludeLarge = true
                        LargeSize = 100L
                    }

                Expect.isEmpty (MailboxGenerator.generate { small with Count = 0 }) "an empty mailbox"
            }

            testPropertyWithConfig
                (propConfig 100)
                "message has exactly the asked size from minimumSize up, and is well-formed"
            <| fun (seed: int) (NonNegativeInt size) ->
                let size = size % 40000

                MailboxGenerator.kinds
                |> List.forall (fun kind ->
                    let m = MailboxGenerator.message kind seed size
                    let length = m.Content.Length

                    lineProblems m.Content = []
                    && length >= int64 size
                    && length <= max (int64 size) MailboxGenerator.minimumSize
                    && (int64 size < MailboxGenerator.minimumSize || length = int64 size))

            testPropertyWithConfig (propConfig 100) "any seed and count give a well-formed mailbox within the bounds"
            <| fun (seed: int) (NonNegativeInt count) (NonNegativeInt minSize) (NonNegativeInt extra) (large: bool) ->
                let options =
                    {
                        Seed = seed
                        Count = count % 51
                        MinSize = minSize % 3000
                        MaxSize = 4096L + int64 (extra % 12288)
                        IncludeLarge = large
                        LargeSize = 20000L + int64 (extra % 1000)
                    }

                let messages = MailboxGenerator.generate options
                let uids = messages |> List.map _.Uid
                let present = messages |> List.map _.Kind |> Set.ofList

                messages.Length = options.Count
                && List.distinct uids = uids
                && List.forall validUid uids
                && messages
                   |> List.forall (fun m ->
                       withinBounds options m
                       && lineProblems m.Content = []
                       && (m.Kind <> "large" || m.Content.Length = options.LargeSize))
                && (options.Count < 10 || mailboxKinds |> List.forall present.Contains)
                && (options.Count = 0 || present.Contains "large" = large)
        ]
