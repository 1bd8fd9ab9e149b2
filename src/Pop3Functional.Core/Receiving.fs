namespace Pop3Functional.Core

open System
open Pop3Functional.Core.SessionContext
open Pop3Functional.Core.Replies
open Pop3Functional.Core.Listings

/// Bytes from the server: framed into lines, or streamed as a body, and handed to the reply handlers.
module internal Receiving =
    let onLine (c: Ctx) (line: ReadOnlyMemory<byte>) (bareLf: bool) (moreBytes: bool) =
        let command =
            match c.S.InFlight.Front with
            | p :: _ -> p.Request.Keyword
            | [] -> ""

        if bareLf && not (c.S.Options.Quirks.Contains Quirk.BareLineFeed) then
            protocolFail
                c
                ProtocolErrorKind.BadStatusLine
                command
                "a line ended in a bare LF and the bare-lf quirk is not enabled"
        elif line.Span.IndexOf Bytes.Nul >= 0 then
            protocolFail c ProtocolErrorKind.NulInLine command "a protocol line contains a NUL byte"
        else
            if bareLf then
                reportQuirks c [ Quirk.BareLineFeed ]

            match c.S.Phase, c.S.InFlight.Front with
            | Phase.AwaitingGreeting, [] -> onGreeting c line
            | _, [] ->
                protocolFail
                    c
                    ProtocolErrorKind.UnsolicitedData
                    ""
                    $"the server sent {Err.quote (Bytes.latin1 line.Span)} with no command outstanding"
            | _, p :: _ when List.contains p.Id c.SentThisStep ->
                // The server answered before it could have read the command (security.md #22): the
                // line would otherwise be paired with a command sent after it arrived.
                protocolFail
                    c
                    ProtocolErrorKind.UnsolicitedData
                    p.Request.Keyword
                    $"the server sent {Err.quote (Bytes.latin1 line.Span)} before {p.Command.LogText} was sent"
            | _, p :: _ ->
                c.Replying <- Some p

                match c.S.Reading with
                | Reading.Listing acc -> onListingLine c p acc line
                | _ -> onStatus c p line moreBytes

                c.Replying <- None

                // A reply may have completed: the window has room again.
                match c.S.Phase with
                | Phase.Failed _ -> ()
                | _ -> pump c

    let bodyStep (c: Ctx) (chunk: ReadOnlyMemory<byte>) (pos: int) (cursor: BodyCursor) (octets: uint64) =
        match c.S.InFlight.Front with
        | [] -> chunk.Length
        | p :: _ ->
            let cap = c.S.Options.Limits.MaxMessageOctets
            let total = ref octets
            let exceeded = ref false

            let sink (segment: ReadOnlyMemory<byte>) =
                if not exceeded.Value then
                    let after = total.Value + uint64 segment.Length

                    match cap with
                    | Some limit when after > limit ->
                        let room = int (limit - total.Value)

                        if room > 0 && p.Id > 0L then
                            c.Out.AddBody(p.Id, segment.Slice(0, room))

                        total.Value <- limit
                        exceeded.Value <- true
                    | _ ->
                        total.Value <- after

                        if p.Id > 0L then
                            c.Out.AddBody(p.Id, segment)

            let progress =
                BodyDecoder.decode (c.S.Options.Quirks.Contains Quirk.BareLineFeed) cursor chunk pos sink

            if progress.BareLfTerminator then
                reportQuirks c [ Quirk.BareLineFeed ]

            if exceeded.Value then
                protocolFail
                    c
                    ProtocolErrorKind.MessageTooLarge
                    p.Request.Keyword
                    $"{p.Command.LogText}: the message exceeds the limit of {Err.n cap.Value} octets"

                chunk.Length
            elif progress.Ended then
                popHead c

                if p.Id > 0L then
                    match p.Request with
                    | Request.Retr n ->
                        match c.S.ListedSizes.TryFind n with
                        | Some listed when listed <> total.Value ->
                            emit c (Event.SizeMismatch(p.Id, n, listed, total.Value))
                        | _ -> ()
                    | _ -> ()

                    emit c (Event.BodyEnded(p.Id, total.Value))

                pump c
                progress.Next
            else
                c.S <-
                    { c.S with
                        Reading = Reading.Body(progress.Cursor, total.Value)
                    }

                chunk.Length

    let received (c: Ctx) (chunk: ReadOnlyMemory<byte>) =
        let len = chunk.Length
        let mutable pos = 0
        let mutable go = true

        while go && pos < len do
            match c.S.Phase with
            | Phase.Failed _
            | Phase.Closed -> go <- false
            | Phase.AwaitingTlsHandshake _ ->
                protocolFail
                    c
                    ProtocolErrorKind.ResponseInjection
                    "STLS"
                    "the server sent plaintext bytes while the TLS handshake was awaited; they could be injected"

                go <- false
            | _ ->
                match c.S.Reading with
                | Reading.Body(cursor, octets) -> pos <- bodyStep c chunk pos cursor octets
                | _ ->
                    // RFC 5034 §4: a SASL challenge is bounded by its own limit, not the line limit.
                    let maxLine =
                        match c.S.InFlight.Front with
                        | p :: _ when p.Expect = Expect.Sasl ->
                            let base64 = (int64 c.S.Options.Limits.MaxSaslChallengeOctets + 2L) / 3L * 4L + 4L
                            max c.S.Options.Limits.MaxLineOctets (int (min base64 (int64 Int32.MaxValue)))
                        | _ -> c.S.Options.Limits.MaxLineOctets

                    match LineFramer.next maxLine c.S.Partial chunk pos with
                    | FramedLine.NeedMore partial ->
                        c.S <- { c.S with Partial = partial }
                        pos <- len
                    | FramedLine.TooLong ->
                        let command =
                            match c.S.InFlight.Front with
                            | p :: _ -> p.Request.Keyword
                            | [] -> ""

                        protocolFail
                            c
                            ProtocolErrorKind.LineTooLong
                            command
                            $"a line from the server exceeds the limit of {maxLine} octets"

                        go <- false
                    | FramedLine.Line(line, next, bareLf) ->
                        // Most lines arrive whole: no copy of the session when nothing was held.
                        if c.S.Partial.Length > 0 then
                            c.S <- { c.S with Partial = PartialLine.Empty }

                        pos <- next
                        onLine c line bareLf (next < len)
