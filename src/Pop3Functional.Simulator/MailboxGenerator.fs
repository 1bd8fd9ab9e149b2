namespace Pop3Functional.Simulator

open System
open System.Collections.Generic
open System.Globalization
open System.Text

/// One generated message.
type GeneratedMessage =
    {
        /// The unique-id listing token UIDL reports (RFC 1939 §7): 1 to 70 characters in 0x21..0x7E.
        Uid: string
        /// The message: RFC 5322 with CRLF line ends, no line over 998 octets, ending with CRLF.
        Content: MessageContent
        /// What makes the message interesting: one of MailboxGenerator.kinds.
        Kind: string
    }

/// Settings for MailboxGenerator.generate.
type GeneratorOptions =
    {
        /// Everything generated follows from the seed.
        Seed: int
        /// The number of messages (the large message, when included, is one of them).
        Count: int
        /// The smallest message size in octets. A message whose fixed parts are larger is larger.
        MinSize: int
        /// The largest message size in octets, the large message excepted; at least
        /// MailboxGenerator.minimumSize and at most MailboxGenerator.maximumSmallSize.
        MaxSize: int64
        /// Make one message LargeSize octets long, served in constant memory.
        IncludeLarge: bool
        /// The size of the large message; at least MailboxGenerator.minimumSize.
        LargeSize: int64
    }

    /// Seed 1, 200 messages of 1 KiB to 256 KiB, no large message (8 MiB when IncludeLarge is set).
    static member Default =
        {
            Seed = 1
            Count = 200
            MinSize = 1024
            MaxSize = 256L * 1024L
            IncludeLarge = false
            LargeSize = 8L * 1024L * 1024L
        }

    /// These options with another seed.
    member this.WithSeed(seed: int) = { this with Seed = seed }

    /// These options with another number of messages.
    member this.WithCount(count: int) = { this with Count = count }

    /// These options with other size bounds (MinSize and MaxSize, in octets).
    member this.WithSizes(minSize: int, maxSize: int64) =
        { this with
            MinSize = minSize
            MaxSize = maxSize
        }

    /// These options with one large message of largeSize octets, served in constant memory.
    member this.WithLargeMessage(largeSize: int64) =
        { this with
            IncludeLarge = true
            LargeSize = largeSize
        }

    /// These options without the large message.
    member this.WithoutLargeMessage() = { this with IncludeLarge = false }

/// Deterministic mailboxes of realistic RFC 5322 mail with the cases that trip POP3 servers and
/// clients: dot-stuffing, 998-octet lines, raw 8-bit and encoded-word headers, folding, nested
/// MIME, empty bodies and one very large message.
[<RequireQualifiedAccess>]
module MailboxGenerator =

    /// SplitMix64 (Steele, Lea and Flood, 2014). Our own rather than System.Random, whose seeded
    /// sequence .NET does not promise to keep across versions; the mailboxes must stay identical.
    type private Rng(seed: uint64) =
        let mutable state = seed

        /// The SplitMix64 output function: scrambles one value (also used to derive seeds).
        static member Mix(value: uint64) =
            let z = (value ^^^ (value >>> 30)) * 0xBF58476D1CE4E5B9UL
            let z = (z ^^^ (z >>> 27)) * 0x94D049BB133111EBUL
            z ^^^ (z >>> 31)

        member _.Next() =
            state <- state + 0x9E3779B97F4A7C15UL
            Rng.Mix state

        /// 0 .. bound-1 (the modulo bias is below 2^-40 for the bounds used here).
        member this.Below(bound: int) =
            if bound <= 1 then 0 else int (this.Next() % uint64 bound)

        /// [0, 1) from the top 53 bits: IEEE arithmetic, so the same on every platform.
        member this.Unit() =
            float (this.Next() >>> 11) * (1.0 / 9007199254740992.0)

        member this.Pick(items: 'T[]) = items[this.Below items.Length]

        member this.Bytes(count: int) =
            let bytes = Array.zeroCreate<byte> count

            for i in 0 .. count - 1 do
                bytes[i] <- byte (this.Next() >>> 56)

            bytes

    /// The kinds every mailbox holds at least once (given enough messages), in a fixed order.
    let private mailboxKinds =
        [
            "plain"
            "dot-lines"
            "long-lines"
            "8bit-header"
            "encoded-words"
            "folded-headers"
            "multipart-attachment"
            "multipart-alternative"
            "empty-body"
        ]

    /// The kinds message knows: every mailbox kind, and "large" (one message served in constant
    /// memory, in a mailbox only with IncludeLarge).
    let kinds = mailboxKinds @ [ "large" ]

    /// The smallest MaxSize and LargeSize accepted: the fixed parts of every kind fit in it, so
    /// every message can honour MaxSize.
    [<Literal>]
    let minimumSize = 4096L

    /// The largest MaxSize accepted: messages up to MaxSize are built as byte arrays; use
    /// IncludeLarge for a bigger one.
    [<Literal>]
    let maximumSmallSize = 67108864L

    /// Plain messages dominate the random mix, as in a real mailbox.
    let private weightedKinds =
        [|
            yield! List.replicate 4 "plain"
            yield! List.replicate 2 "multipart-attachment"
            yield! List.replicate 2 "multipart-alternative"
            "dot-lines"
            "long-lines"
            "8bit-header"
            "encoded-words"
            "folded-headers"
            "empty-body"
        |]

    // ---- text pools (reserved example domains only: RFC 2606) ----

    let private words =
        [|
            "the"
            "quarterly"
            "report"
            "meeting"
            "agenda"
            "budget"
            "review"
            "draft"
            "please"
            "note"
            "schedule"
            "update"
            "project"
            "server"
            "mailbox"
            "message"
            "attached"
            "thanks"
            "team"
            "deadline"
            "friday"
            "monday"
            "office"
            "invoice"
            "customer"
            "release"
            "notes"
            "question"
            "answer"
            "follow"
            "up"
            "on"
            "with"
            "and"
            "for"
            "about"
            "our"
            "next"
            "week"
            "plan"
            "figures"
            "summary"
            "changes"
            "version"
            "test"
            "result"
            "approve"
            "send"
            "copy"
            "call"
            "a"
        |]

    let private people =
        [|
            "Alice Martin", "alice.martin@example.com"
            "Bob Jones", "bob@example.org"
            "Carol Smith", "carol.smith@example.net"
            "Dave Brown", "dave.brown@example.com"
            "Erin Clark", "erin@mail.example.org"
            "Frank Wilson", "frank.wilson@example.net"
            "Grace Lee", "grace.lee@example.com"
            "Heidi Walker", "heidi@example.org"
            "Ivan Petrov", "ivan.petrov@example.net"
            "Judy Hall", "judy.hall@example.com"
        |]

    let private subjects =
        [|
            "Quarterly report"
            "Meeting agenda for Monday"
            "Re: Budget review"
            "Fwd: Release notes"
            "Invoice 2024-117"
            "Lunch on Friday?"
            "Server maintenance window"
            "Re: Re: Project plan"
        |]

    /// Display names and subjects in UTF-8 (written raw in 8bit-header, as RFC 5322 forbids and
    /// RFC 6532 allows).
    let private utf8People =
        [|
            "Jürgen Groß", "juergen.gross@example.de"
            "Zoë Ångström", "zoe@example.se"
            "田中 太郎", "tanaka@example.jp"
            "Renée Lefèvre", "renee@example.fr"
            "Дмитрий Иванов", "dmitry@example.ru"
        |]

    let private utf8Subjects =
        [|
            "Grüße aus Köln"
            "日本語のテスト"
            "Café crème à Noël"
            "Привет из Москвы"
            "Grüße aus Köln und ein etwas längerer Betreff: äöü ÄÖÜ ß — 日本語のテスト"
        |]

    /// Names ISO-8859-1 can encode, for =?ISO-8859-1?Q?...?= words.
    let private latin1People =
        [|
            "Jürgen Groß", "juergen.gross@example.de"
            "Zoë Ångström", "zoe@example.se"
            "Renée Lefèvre", "renee@example.fr"
            "José Núñez", "jose@example.es"
        |]

    let private firstName (name: string) =
        match name.IndexOf ' ' with
        | -1 -> name
        | i -> name.Substring(0, i)

    /// A second person, different from the first.
    let private other (rng: Rng) (pool: (string * string)[]) (first: string * string) =
        let i = Array.IndexOf(pool, first)
        pool[(i + 1 + rng.Below(pool.Length - 1)) % pool.Length]

    let private mailbox (name: string, address: string) = $"{name} <{address}>"

    let private domainOf (address: string) =
        address.Substring(address.IndexOf '@' + 1)

    // ---- dates: a fixed epoch plus a seeded offset, never the clock ----

    // Noon, so that no time zone below puts a date back into 2023.
    let private epoch = DateTimeOffset(2024, 1, 1, 12, 0, 0, TimeSpan.Zero)
    let private dayNames = [| "Sun"; "Mon"; "Tue"; "Wed"; "Thu"; "Fri"; "Sat" |]

    let private monthNames =
        [|
            "Jan"
            "Feb"
            "Mar"
            "Apr"
            "May"
            "Jun"
            "Jul"
            "Aug"
            "Sep"
            "Oct"
            "Nov"
            "Dec"
        |]

    let private zoneMinutes = [| 0; 60; 120; -300; -480; 330; 540 |]

    /// An RFC 5322 §3.3 date-time, seconds after the epoch, in one of a few time zones.
    let private rfc5322Date (seconds: int64) (zone: int) =
        let t =
            epoch.AddTicks(seconds * TimeSpan.TicksPerSecond).ToOffset(TimeSpan.FromMinutes(float zone))

        let sign = if zone < 0 then "-" else "+"

        // Not sprintf: its formatting builds generic methods at run time, which native AOT
        // (the published pop3) cannot do. The same text: "Mon, 01 Jan 2024 12:00:00 +0000".
        let d (width: int) (n: int) =
            n.ToString(String('0', width), CultureInfo.InvariantCulture)

        String.Concat(
            [|
                dayNames[int t.DayOfWeek]
                ", "
                d 2 t.Day
                " "
                monthNames[t.Month - 1]
                " "
                d 4 t.Year
                " "
                d 2 t.Hour
                ":"
                d 2 t.Minute
                ":"
                d 2 t.Second
                " "
                sign
                d 2 (abs zone / 60)
                d 2 (abs zone % 60)
            |]
        )

    // ---- building blocks ----

    /// A part of a message: fixed octets, or the one filler that brings it to its target size.
    type private Piece =
        | Octets of byte[]
        /// Lines of words, then a sign-off by signer; fills the body exactly for any length
        /// from the sign-off's own length up.
        | Prose of signer: string
        /// Header fields (X-Padding, then X-Mailer), for a message with no body to fill.
        | HeaderPad

    let private crlf = "\r\n"

    /// Lines, each followed by CRLF.
    let private lines (ls: string list) =
        Octets(Encoding.UTF8.GetBytes(String.concat "" (ls |> List.map (fun l -> l + crlf))))

    /// The words of each length from 1 to the longest: every gap in a line can end with a whole word.
    let private wordsByLength =
        Array.init (words |> Array.map String.length |> Array.max) (fun i ->
            words |> Array.filter (fun w -> w.Length = i + 1))

    /// Exactly length characters of whole words separated by single spaces, the first one
    /// capitalised; never starts with a space or a dot (a dot start is the dot-lines kind's job).
    let private wordLine (rng: Rng) (length: int) =
        let sb = StringBuilder(length)

        while sb.Length < length do
            let room = length - sb.Length
            let word = rng.Pick words

            if room = 1 && sb.Length > 0 then
                sb.Append '.' |> ignore
            else
                let start = if sb.Length = 0 then 0 else 1
                // A word that does not fit gives way to one that fills the gap exactly.
                let word =
                    if word.Length <= room - start then
                        word
                    else
                        rng.Pick wordsByLength[room - start - 1]

                if start = 1 then
                    sb.Append(' ').Append(word) |> ignore
                else
                    sb.Append(Char.ToUpperInvariant word[0]).Append(word, 1, word.Length - 1)
                    |> ignore

        sb.ToString()

    let private tokenAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".ToCharArray()

    /// length characters with no space (a token that cannot be wrapped).
    let private token (rng: Rng) (length: int) =
        String(Array.init length (fun _ -> rng.Pick tokenAlphabet))

    let private signOff (signer: string) (extraDot: bool) =
        $"Regards,\r\n{signer}" + (if extraDot then "." else "") + crlf

    let private proseMinimum (signer: string) =
        Encoding.UTF8.GetByteCount(signOff signer false)

    /// Exactly length octets (at least proseMinimum signer): lines of at most 72 characters in
    /// paragraphs, then the sign-off. A line needs 2 octets (CRLF), so a 1-octet remainder goes
    /// into the sign-off as a final dot.
    let private prose (rng: Rng) (signer: string) (length: int) =
        let rest = length - proseMinimum signer

        let closing, rest =
            if rest = 1 then
                signOff signer true, 0
            else
                signOff signer false, rest

        let sb = StringBuilder(rest + closing.Length)
        let mutable left = rest
        let mutable inParagraph = 0
        let mutable paragraph = 3 + rng.Below 5

        while left > 0 do
            // A blank line only when at least 2 octets remain after it, so no 1-octet remainder.
            if inParagraph >= paragraph && left >= 4 then
                sb.Append crlf |> ignore
                left <- left - 2
                inParagraph <- 0
                paragraph <- 3 + rng.Below 5
            else
                let total = min 74 left
                let total = if left - total = 1 then total - 1 else total
                sb.Append(wordLine rng (total - 2)).Append(crlf) |> ignore
                left <- left - total
                inParagraph <- inParagraph + 1

        Encoding.UTF8.GetBytes(sb.Append(closing).ToString())

    let private mailer = "X-Mailer: Pop3Functional.Simulator"
    let private headerPadMinimum = mailer.Length + 2
    let private smallestPadField = "X-Padding: a\r\n".Length

    /// Exactly length octets (at least headerPadMinimum) of header fields: X-Padding fields of at
    /// most 78 octets, then X-Mailer, whose version suffix takes a remainder too small for a field.
    let private headerPad (rng: Rng) (length: int) =
        let rest = length - headerPadMinimum
        let sb = StringBuilder(length)

        let mutable left =
            if rest < smallestPadField then
                sb.Append(mailer).Append("/1234567890123".AsSpan(0, rest)).Append(crlf)
                |> ignore

                0
            else
                sb.Append(mailer).Append(crlf) |> ignore
                rest

        while left > 0 do
            let total = min 78 left
            // Never leave less than a whole field.
            let total =
                if left - total > 0 && left - total < smallestPadField then
                    left - smallestPadField
                else
                    total

            let value =
                String(Array.init (total - 13) (fun _ -> "abcdefghijklmnopqrstuvwxyz234567"[rng.Below 32]))

            sb.Insert(0, $"X-Padding: {value}\r\n") |> ignore
            left <- left - total

        Encoding.ASCII.GetBytes(sb.ToString())

    /// The pieces laid out to max(target, fixed parts + the filler's minimum) octets.
    let private render (rng: Rng) (target: int64) (pieces: Piece list) =
        let fixedLength =
            pieces
            |> List.sumBy (function
                | Octets b -> int64 b.Length
                | _ -> 0L)

        let minimum =
            pieces
            |> List.sumBy (function
                | Octets _ -> 0
                | Prose signer -> proseMinimum signer
                | HeaderPad -> headerPadMinimum)

        let fill = int (max (target - fixedLength) (int64 minimum))

        pieces
        |> List.map (function
            | Octets b -> b
            | Prose signer -> prose rng signer fill
            | HeaderPad -> headerPad rng fill)
        |> Array.concat

    /// Base64 in lines of 76 characters (RFC 2045 §6.8), the last one shorter.
    let private base64Lines (bytes: byte[]) =
        let encoded = Convert.ToBase64String bytes

        [
            for at in 0..76 .. encoded.Length - 1 -> encoded.Substring(at, min 76 (encoded.Length - at))
        ]

    /// =?UTF-8?B?...?= words of at most 64 characters, split between whole characters
    /// (RFC 2047 §5: an encoded word must not split a character), folded one per line.
    let private encodedWordsB (text: string) =
        let chunks = ResizeArray<string>()
        let current = StringBuilder()

        for rune in text.EnumerateRunes() do
            if Encoding.UTF8.GetByteCount(current.ToString() + rune.ToString()) > 39 then
                chunks.Add(current.ToString())
                current.Clear() |> ignore

            current.Append(rune.ToString()) |> ignore

        chunks.Add(current.ToString())

        chunks
        |> Seq.map (fun c -> "=?UTF-8?B?" + Convert.ToBase64String(Encoding.UTF8.GetBytes c) + "?=")
        |> String.concat "\r\n "

    /// One =?ISO-8859-1?Q?...?= word (RFC 2047 §4.2: "_" for space, =XX for anything else).
    let private encodedWordQ (text: string) =
        let sb = StringBuilder("=?ISO-8859-1?Q?")

        for b in Encoding.Latin1.GetBytes text do
            let c = char b

            if Char.IsAsciiLetterOrDigit c then sb.Append c |> ignore
            elif c = ' ' then sb.Append '_' |> ignore
            else sb.Append($"={b:X2}") |> ignore

        sb.Append("?=").ToString()

    /// What every kind knows about the message it builds.
    type private Draft =
        {
            Rng: Rng
            Uid: string
            Date: string
            Target: int64
            /// A per-message number for boundaries and identifiers.
            Tag: uint64
        }

    let private messageId (d: Draft) (sender: string) =
        $"<{d.Uid.ToLowerInvariant()}.{d.Tag % 1000000UL}@{domainOf sender}>"

    let private commonHeaders (d: Draft) (from: string) (sender: string) (toField: string) (subject: string) =
        [
            $"From: {from}"
            $"To: {toField}"
            $"Subject: {subject}"
            $"Date: {d.Date}"
            $"Message-ID: {messageId d sender}"
        ]

    let private textPlainHeaders charset encoding =
        [
            "MIME-Version: 1.0"
            $"Content-Type: text/plain; charset={charset}"
            $"Content-Transfer-Encoding: {encoding}"
        ]

    let private plain (d: Draft) =
        let from = d.Rng.Pick people
        let recipient = other d.Rng people from

        [
            lines (
                commonHeaders d (mailbox from) (snd from) (mailbox recipient) (d.Rng.Pick subjects)
                @ [ ""; $"Hi {firstName (fst recipient)},"; "" ]
            )
            Prose(firstName (fst from))
        ]

    let private dotLines (d: Draft) =
        let from = d.Rng.Pick people
        let recipient = other d.Rng people from

        [
            lines (
                commonHeaders d (mailbox from) (snd from) (mailbox recipient) "Dots at the start of lines"
                @ textPlainHeaders "us-ascii" "7bit"
                @ [
                    ""
                    $"Hi {firstName (fst recipient)},"
                    ""
                    "The lines below start with dots; a server must stuff them (RFC 1939 section 3):"
                    "."
                    ".."
                    "..."
                    ".hidden"
                    ". a dot and a space"
                    "..double dot"
                    " .a space, then a dot"
                    "."
                    ""
                ]
            )
            Prose(firstName (fst from))
            // The last line is a lone dot as well: right before the end marker.
            lines [ "." ]
        ]

    let private longLines (d: Draft) =
        let from = d.Rng.Pick people
        let recipient = other d.Rng people from
        let longHeader = "X-Long-Header: "

        [
            lines (
                commonHeaders d (mailbox from) (snd from) (mailbox recipient) "Lines of 998 octets"
                @ textPlainHeaders "us-ascii" "7bit"
                @ [
                    // RFC 5322 §2.1.1: 998 characters is the most a line may hold, headers included.
                    longHeader + wordLine d.Rng (998 - longHeader.Length)
                    ""
                    $"Hi {firstName (fst recipient)},"
                    ""
                    wordLine d.Rng 998
                    // Dot-stuffing makes this line 999 octets on the wire (RFC 1939 §3 allows it).
                    "." + token d.Rng 997
                    if d.Target >= 8192L then
                        token d.Rng 998
                    ""
                ]
            )
            Prose(firstName (fst from))
        ]

    let private eightBitHeader (d: Draft) =
        let from = d.Rng.Pick utf8People
        let recipient = other d.Rng utf8People from

        [
            lines (
                // Raw UTF-8 in From, To and Subject: Courier rewrites such a message for a client
                // that did not send UTF8 (DESIGN §9).
                commonHeaders d $"\"{fst from}\" <{snd from}>" (snd from) (mailbox recipient) (d.Rng.Pick utf8Subjects)
                @ textPlainHeaders "UTF-8" "8bit"
                @ [ ""; $"Hallo {firstName (fst recipient)}, liebe Grüße!"; "" ]
            )
            Prose(fst from)
        ]

    let private encodedWords (d: Draft) =
        let from = d.Rng.Pick latin1People
        let recipient = d.Rng.Pick utf8People

        [
            lines (
                commonHeaders
                    d
                    $"{encodedWordQ (fst from)} <{snd from}>"
                    (snd from)
                    $"{encodedWordsB (fst recipient)} <{snd recipient}>"
                    (encodedWordsB (d.Rng.Pick utf8Subjects))
                @ textPlainHeaders "UTF-8" "7bit"
                @ [ ""; "Hello,"; "" ]
            )
            Prose(firstName (fst (d.Rng.Pick people)))
        ]

    let private foldedHeaders (d: Draft) =
        let from = d.Rng.Pick people
        // Distinct recipients other than the sender, from a seeded starting point.
        let others = people |> Array.filter (fun p -> p <> from)
        let start = d.Rng.Below others.Length

        let recipients =
            Array.init (4 + d.Rng.Below 4) (fun i -> others[(start + i) % others.Length])

        let references =
            List.init (3 + d.Rng.Below 5) (fun i -> $"<{d.Tag - uint64 (i + 1):x}.{i}@{domainOf (snd from)}>")

        let relay = 1 + d.Rng.Below 200

        [
            lines
                [
                    // Continuation lines start with a tab or a space (RFC 5322 §2.2.3).
                    $"Received: from mx{relay}.example.net (mx{relay}.example.net [192.0.2.{relay}])"
                    $"\tby mail.example.org (Postfix) with ESMTPS id {d.Tag % 0xFFFFFFFFFFUL:X10}"
                    $"\tfor <{snd recipients[0]}>; {d.Date}"
                    $"From: {mailbox from}"
                    $"To: {mailbox recipients[0]},"
                    yield!
                        recipients[1..]
                        |> Array.mapi (fun i r -> "\t" + mailbox r + (if i < recipients.Length - 2 then "," else ""))
                    "Subject: A subject folded"
                    " over three lines,"
                    "\twith a space and then a tab"
                    $"Date: {d.Date}"
                    $"Message-ID: {messageId d (snd from)}"
                    $"In-Reply-To: {List.last references}"
                    $"References: {List.head references}"
                    yield! references.Tail |> List.map (fun r -> " " + r)
                    // Folded straight after the colon: the value starts on the next line.
                    "Keywords:"
                    " folding, headers, continuation"
                    ""
                    "Hello all,"
                    ""
                ]
            Prose(firstName (fst from))
        ]

    let private multipartAttachment (d: Draft) =
        let from = d.Rng.Pick people
        let recipient = other d.Rng people from
        let boundary = $"=_mixed_{d.Tag:x16}"
        // About half the target goes to the attachment, so large targets get large attachments.
        let size = int (max 120L ((d.Target - 3072L) * 3L / 8L))
        let attachment = d.Rng.Bytes size
        let file = $"data-{d.Tag % 10000UL:D4}.bin"

        [
            lines (
                commonHeaders d (mailbox from) (snd from) (mailbox recipient) "The data you asked for"
                @ [
                    "MIME-Version: 1.0"
                    "Content-Type: multipart/mixed;"
                    $"\tboundary=\"{boundary}\""
                    ""
                    "This is a multi-part message in MIME format."
                    ""
                    $"--{boundary}"
                    "Content-Type: text/plain; charset=us-ascii"
                    "Content-Transfer-Encoding: 7bit"
                    ""
                    $"Hi {firstName (fst recipient)}, the data is attached."
                    ""
                ]
            )
            Prose(firstName (fst from))
            lines (
                [
                    $"--{boundary}"
                    $"Content-Type: application/octet-stream; name=\"{file}\""
                    "Content-Transfer-Encoding: base64"
                    // RFC 2183 §2.7: size is the decoded size, which tests check.
                    $"Content-Disposition: attachment; filename=\"{file}\"; size={size}"
                    ""
                ]
                @ base64Lines attachment
                @ [ $"--{boundary}--" ]
            )
        ]

    /// A PNG signature and IHDR chunk start, then noise: enough to look like an image.
    let private pngStart =
        [| 0x89uy; 0x50uy; 0x4Euy; 0x47uy; 0x0Duy; 0x0Auy; 0x1Auy; 0x0Auy |]

    let private multipartAlternative (d: Draft) =
        let from = d.Rng.Pick people
        let recipient = other d.Rng people from
        let alternative = $"=_alt_{d.Tag:x16}"
        let related = $"=_rel_{d.Tag:x16}"
        let cid = $"logo.{d.Tag:x}@{domainOf (snd from)}"
        let image = Array.append pngStart (d.Rng.Bytes(200 + d.Rng.Below 1000))
        let name = firstName (fst recipient)

        [
            lines (
                commonHeaders d (mailbox from) (snd from) (mailbox recipient) "Newsletter"
                @ [
                    "MIME-Version: 1.0"
                    $"Content-Type: multipart/alternative; boundary=\"{alternative}\""
                    ""
                    $"--{alternative}"
                    "Content-Type: text/plain; charset=us-ascii"
                    "Content-Transfer-Encoding: 7bit"
                    ""
                    $"Hi {name},"
                    ""
                ]
            )
            Prose(firstName (fst from))
            lines (
                [
                    $"--{alternative}"
                    $"Content-Type: multipart/related; boundary=\"{related}\"; type=\"text/html\""
                    ""
                    $"--{related}"
                    "Content-Type: text/html; charset=us-ascii"
                    "Content-Transfer-Encoding: 7bit"
                    ""
                    "<html><body>"
                    $"<p>Hi {name},</p><p>this is the HTML version.</p>"
                    $"<img src=\"cid:{cid}\" alt=\"logo\">"
                    "</body></html>"
                    $"--{related}"
                    "Content-Type: image/png"
                    "Content-Transfer-Encoding: base64"
                    $"Content-ID: <{cid}>"
                    "Content-Disposition: inline; filename=\"logo.png\""
                    ""
                ]
                @ base64Lines image
                @ [ $"--{related}--"; ""; $"--{alternative}--" ]
            )
        ]

    let private emptyBody (d: Draft) =
        let from = d.Rng.Pick people
        let recipient = other d.Rng people from

        [
            lines (commonHeaders d (mailbox from) (snd from) (mailbox recipient) "(no body)")
            HeaderPad
            // The blank line that ends the header section, and nothing after it.
            lines [ "" ]
        ]

    /// Headers as bytes, then MessageContent.Generated for the rest: no array of the full size
    /// is ever built.
    let private large (d: Draft) (length: int64) =
        let from = d.Rng.Pick people
        let recipient = other d.Rng people from
        let generatedSeed = int (uint32 d.Tag)

        let header (note: string) =
            commonHeaders d (mailbox from) (snd from) (mailbox recipient) $"Large message ({length} octets)"
            @ textPlainHeaders "us-ascii" "7bit"
            @ [ $"X-Note: {note}"; ""; "" ]
            |> String.concat crlf
            |> Encoding.ASCII.GetBytes

        let bodyFor (header: byte[]) =
            MessageContent.Generated(length - int64 header.Length, generatedSeed)

        // Generated content ends "CR CR LF" (a bare CR) at some lengths, where its forced final
        // CRLF lands just after a line's own CR; one more header octet moves the end past it.
        let endsCleanly (content: MessageContent) =
            let tail = Array.zeroCreate<byte> 3
            content.CopyTo(content.Length - 3L, Span tail) = 3 && tail[0] <> 13uy

        let first = header "generated body"
        let body = bodyFor first

        if endsCleanly body then
            MessageContent.Concat [ MessageContent.OfBytes first; body ]
        else
            let second = header "generated body."
            MessageContent.Concat [ MessageContent.OfBytes second; bodyFor second ]

    let private unknownKind (kind: string) =
        let known = String.concat ", " kinds
        invalidArg (nameof kind) $"Unknown kind '{kind}'; the kinds are: {known}."

    let private build (kind: string) : Draft -> Piece list =
        match kind with
        | "plain" -> plain
        | "dot-lines" -> dotLines
        | "long-lines" -> longLines
        | "8bit-header" -> eightBitHeader
        | "encoded-words" -> encodedWords
        | "folded-headers" -> foldedHeaders
        | "multipart-attachment" -> multipartAttachment
        | "multipart-alternative" -> multipartAlternative
        | "empty-body" -> emptyBody
        | _ -> unknownKind kind

    let private content (kind: string) (d: Draft) =
        if kind = "large" then
            large d (max d.Target minimumSize)
        else
            MessageContent.OfBytes(render d.Rng d.Target (build kind d))

    /// FNV-1a over the kind's characters: a stable hash (string.GetHashCode varies per process).
    let private stableHash (text: string) =
        text
        |> Seq.fold (fun h c -> (h ^^^ uint64 c) * 0x100000001B3UL) 0xCBF29CE484222325UL

    /// One message of the given kind for tests, deterministic from seed and size: exactly size
    /// octets when size is at least minimumSize (smaller sizes give the kind's smallest message).
    let message (kind: string) (seed: int) (size: int) : GeneratedMessage =
        if not (List.contains kind kinds) then
            unknownKind kind

        let tag = Rng.Mix(Rng.Mix(uint64 (int64 seed)) ^^^ stableHash kind ^^^ uint64 size)
        let rng = Rng tag
        let date = rfc5322Date (int64 (rng.Below(365 * 86400))) (rng.Pick zoneMinutes)

        let draft =
            {
                Rng = rng
                Uid = $"{tag:X16}"
                Date = date
                Target = int64 (max 0 size)
                Tag = tag
            }

        {
            Uid = draft.Uid
            Content = content kind draft
            Kind = kind
        }

    let private validate (options: GeneratorOptions) =
        let fail (why: string) = invalidArg (nameof options) why

        if options.Count < 0 then
            fail "Count must be zero or more."

        if options.MinSize < 0 then
            fail "MinSize must be zero or more."

        if options.MaxSize < int64 options.MinSize then
            fail "MaxSize must be at least MinSize."

        if options.MaxSize < minimumSize || options.MaxSize > maximumSmallSize then
            fail $"MaxSize must be from {minimumSize} to {maximumSmallSize} octets."

        if options.IncludeLarge && options.LargeSize < minimumSize then
            fail $"LargeSize must be at least {minimumSize} octets."

    /// A mailbox of options.Count messages in delivery order. Deterministic from options: the same
    /// options give byte-identical messages and UIDs. With Count at least 9 (10 with IncludeLarge)
    /// every kind is present; the rest are a seeded mix, mostly plain. Sizes are seeded between
    /// MinSize and MaxSize, skewed toward small; an empty-body message is MinSize (or its headers'
    /// size if larger). UIDs are Dovecot-style: the message number and a per-mailbox validity
    /// value, 16 hex digits.
    let generate (options: GeneratorOptions) : GeneratedMessage list =
        validate options
        let mailboxSeed = Rng.Mix(uint64 (int64 options.Seed))
        let rng = Rng mailboxSeed
        let validity = uint32 (rng.Next() >>> 32)

        let plan =
            [|
                if options.IncludeLarge then
                    yield "large"
                yield! mailboxKinds
                for _ in 1 .. options.Count -> rng.Pick weightedKinds
            |]
            |> Array.truncate options.Count

        // Fisher-Yates, so the special kinds land anywhere in the mailbox.
        for i in plan.Length - 1 .. -1 .. 1 do
            let j = rng.Below(i + 1)
            let kept = plan[i]
            plan[i] <- plan[j]
            plan[j] <- kept

        let low = int64 options.MinSize
        let span = float (options.MaxSize - low)

        plan
        |> Array.mapi (fun index kind ->
            let u = rng.Unit()
            // u³ puts the median near an eighth of the range: most mail is small.
            let drawn = low + int64 (span * u * u * u)
            let tag = Rng.Mix(mailboxSeed ^^^ Rng.Mix(uint64 index + 1UL))
            let messageRng = Rng tag
            // Three hours apart on average, in order: a mailbox fills over time.
            let seconds = int64 index * 10800L + int64 (messageRng.Below 10800)

            let draft =
                {
                    Rng = messageRng
                    Uid = $"{index + 1:X8}{validity:X8}"
                    Date = rfc5322Date seconds (messageRng.Pick zoneMinutes)
                    Target =
                        match kind with
                        | "large" -> options.LargeSize
                        | "empty-body" -> low
                        | _ -> drawn
                    Tag = tag
                }

            {
                Uid = draft.Uid
                Content = content kind draft
                Kind = kind
            })
        |> List.ofArray

    /// The kinds message knows, for C# (the same as kinds).
    let Kinds: IReadOnlyList<string> = Array.AsReadOnly(Array.ofList kinds)

    /// One message of the given kind, for C# (the same as message kind seed size).
    let Message (kind: string, seed: int, size: int) : GeneratedMessage = message kind seed size

    /// A mailbox of options.Count messages in delivery order, for C# (the same messages as
    /// generate options, as a read-only list).
    let Generate (options: GeneratorOptions) : IReadOnlyList<GeneratedMessage> =
        generate options |> Array.ofList :> IReadOnlyList<GeneratedMessage>
