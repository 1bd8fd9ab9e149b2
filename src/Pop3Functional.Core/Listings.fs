namespace Pop3Functional.Core

open System
open Pop3Functional.Core.SessionContext
open Pop3Functional.Core.Replies

/// Multi-line listings (LIST, UIDL, CAPA, LANG): line by line, then checked whole.
module internal Listings =
    let currentCount (s: SessionState) =
        match s.Phase with
        | Phase.Transaction snap
        | Phase.AwaitingQuitReply(Some snap) -> Some snap
        | _ -> None

    /// Checks a complete LIST/UIDL listing: duplicates and zero are errors; disorder and gaps are quirks.
    let checkNumbers (c: Ctx) (p: Pending) (keyword: string) (numbers: uint64[]) (onOk: unit -> unit) =
        let quirks = c.S.Options.Quirks
        let mutable ordered = true

        for i in 1 .. numbers.Length - 1 do
            if numbers[i] <= numbers[i - 1] then
                ordered <- false

        let sorted =
            if ordered then
                numbers
            else
                let copy = Array.copy numbers
                Array.sortInPlace copy
                copy

        let duplicate =
            seq { 1 .. sorted.Length - 1 }
            |> Seq.tryFind (fun i -> sorted[i] = sorted[i - 1])

        match duplicate with
        | Some i ->
            protocolFail
                c
                ProtocolErrorKind.DuplicateMessageNumber
                keyword
                $"{keyword} listed message {sorted[i]} twice"
        | None ->
            let disorder = not ordered

            let gaps =
                match currentCount c.S with
                | Some snap ->
                    let deletedNotListed =
                        p.DeletedBefore
                        |> Seq.filter (fun d -> Array.BinarySearch(sorted, d) < 0)
                        |> Seq.length

                    uint64 sorted.Length + uint64 deletedNotListed < snap.Count
                | None -> false

            if disorder && not (quirks.Contains Quirk.ListingOutOfOrder) then
                protocolFail
                    c
                    ProtocolErrorKind.BadListing
                    keyword
                    $"{keyword} listed messages out of order and that quirk is not enabled"
            elif gaps && not (quirks.Contains Quirk.ListingGaps) then
                protocolFail
                    c
                    ProtocolErrorKind.BadListing
                    keyword
                    $"{keyword} skipped messages not deleted in this session and that quirk is not enabled"
            else
                reportQuirks
                    c
                    ((if disorder then [ Quirk.ListingOutOfOrder ] else [])
                     @ (if gaps then [ Quirk.ListingGaps ] else []))

                onOk ()

    let finishListing (c: Ctx) (p: Pending) (acc: ListingAcc) =
        let keyword = p.Request.Keyword
        popHead c

        match acc with
        | ListingAcc.Entries(entries, _) ->
            let entries = List.rev entries
            let numbers = entries |> List.map _.Number |> Array.ofList

            checkNumbers c p keyword numbers (fun () ->
                c.S <-
                    { c.S with
                        ListedSizes = entries |> List.fold (fun m e -> Map.add e.Number e.Octets m) c.S.ListedSizes
                    }

                answer c p (Reply.Listing entries))
        | ListingAcc.Uids(entries, _) ->
            let entries = List.rev entries
            let numbers = entries |> List.map _.Number |> Array.ofList

            checkNumbers c p keyword numbers (fun () ->
                let uids = entries |> List.map _.Uid.Value |> Array.ofList
                Array.sortInPlace uids

                let dup =
                    seq { 1 .. uids.Length - 1 } |> Seq.exists (fun i -> uids[i] = uids[i - 1])

                if dup && not (c.S.Options.Quirks.Contains Quirk.DuplicateUids) then
                    protocolFail c ProtocolErrorKind.BadUid keyword "UIDL listed the same UID for two messages"
                else
                    if dup then
                        reportQuirks c [ Quirk.DuplicateUids ]

                    answer c p (Reply.UidListing entries))
        | ListingAcc.Capa(caps, _) ->
            c.S <-
                { c.S with
                    Capabilities = caps
                    CapaSupported = Some true
                }

            emit c (Event.CapabilitiesReceived caps)
            answer c p (Reply.Capabilities caps)

            match c.S.Phase with
            | Phase.AwaitingCapa _ when p.Id < 0L -> afterCapa c (Trigger.Ok "CAPA")
            | Phase.OpeningMailbox _ -> move c (Trigger.Ok "CAPA") c.S.Phase
            | _ -> ()
        | ListingAcc.Languages(entries, _) -> answer c p (Reply.Languages(List.rev entries))
        | ListingAcc.Lines(status, lines, _) -> answer c p (Reply.Extension(status, List.rev lines))

    let onListingLine (c: Ctx) (p: Pending) (acc: ListingAcc) (line: ReadOnlyMemory<byte>) =
        let span = line.Span

        if span.Length = 1 && span[0] = Bytes.Dot then
            finishListing c p acc
        else
            // RFC 1939 §3: a line starting with "." has it stuffed.
            let item =
                if span.Length > 0 && span[0] = Bytes.Dot then
                    line.Slice 1
                else
                    line

            let keyword = p.Request.Keyword
            let quirks = c.S.Options.Quirks
            let limits = c.S.Options.Limits

            let set acc =
                c.S <-
                    { c.S with
                        Reading = Reading.Listing acc
                    }

            let checkNumber (n: uint64) (onOk: unit -> unit) =
                match currentCount c.S with
                | _ when n = 0UL ->
                    protocolFail c ProtocolErrorKind.WrongMessageNumber keyword $"{keyword} listed message number 0"
                | Some snap when n > snap.Count ->
                    protocolFail
                        c
                        ProtocolErrorKind.WrongMessageNumber
                        keyword
                        $"{keyword} listed message {n}, but STAT counted {snap.Count} at login"
                | _ -> onOk ()

            // DESIGN §5: a listing holds at most the STAT count (numbers are unique), else the limit.
            let maxEntries =
                match currentCount c.S with
                | Some snap -> min snap.Count limits.MaxListingEntries
                | None -> limits.MaxListingEntries

            // One more LIST or UIDL entry: its number checked first, then the count.
            let addEntry (number: uint64) (count: uint64) (next: unit -> ListingAcc) =
                checkNumber number (fun () ->
                    if count + 1UL > maxEntries then
                        protocolFail
                            c
                            ProtocolErrorKind.ListingTooLong
                            keyword
                            $"{keyword} sent more than {maxEntries} entries"
                    else
                        set (next ()))

            match acc with
            | ListingAcc.Entries(entries, count) ->
                parsedOr c keyword (ReplyParser.listEntry quirks item.Span) (fun e ->
                    addEntry e.Number count (fun () -> ListingAcc.Entries(e :: entries, count + 1UL)))
            | ListingAcc.Uids(entries, count) ->
                parsedOr c keyword (ReplyParser.uidEntry quirks item.Span) (fun e ->
                    addEntry e.Number count (fun () -> ListingAcc.Uids(e :: entries, count + 1UL)))
            | ListingAcc.Capa(caps, lines) ->
                if lines + 1 > limits.MaxCapaLines then
                    protocolFail
                        c
                        ProtocolErrorKind.ListingTooLong
                        keyword
                        $"CAPA sent more than {limits.MaxCapaLines} lines"
                else
                    let text = ReplyParser.decode c.S.Utf8Active item.Span
                    set (ListingAcc.Capa(ReplyParser.capabilityLine caps text, lines + 1))
            | ListingAcc.Languages(entries, count) ->
                if count + 1 > limits.MaxCapaLines then
                    protocolFail
                        c
                        ProtocolErrorKind.ListingTooLong
                        keyword
                        $"LANG sent more than {limits.MaxCapaLines} lines"
                else
                    parsedOr c keyword (ReplyParser.languageEntry c.S.Utf8Active item.Span) (fun e ->
                        set (ListingAcc.Languages(e :: entries, count + 1)))
            | ListingAcc.Lines(status, lines, count) ->
                if count + 1 > limits.MaxCapaLines then
                    protocolFail
                        c
                        ProtocolErrorKind.ListingTooLong
                        keyword
                        $"{keyword} sent more than {limits.MaxCapaLines} lines"
                else
                    let text = ReplyParser.decode c.S.Utf8Active item.Span
                    set (ListingAcc.Lines(status, text :: lines, count + 1))
