/// Property-based tests of the client core against the simulated server, entirely in memory:
/// random mailboxes, random request sequences, random chunking, every personality.
module Pop3Functional.Simulator.Tests.ClientServerTests

open System
open System.Text
open Expecto
open FsCheck
open FsCheck.FSharp
open Pop3Functional.Core
open Pop3Functional.Simulator
open Pop3Functional.Simulator.Tests.Loop

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/// A message to deliver: its UID and its octets (CRLF line ends, ending in CRLF).
type TestMessage = { Uid: string; Content: byte[] }

let private crlf = "\r\n"B
let utf8 (s: string) = Encoding.UTF8.GetBytes s
let latin1 (b: byte[]) = Encoding.Latin1.GetString b

/// The lines of a message, each with its CRLF.
let linesOf (content: byte[]) =
    let lines = ResizeArray<byte[]>()
    let mutable start = 0

    for i in 0 .. content.Length - 1 do
        if content[i] = 10uy then
            lines.Add content[start..i]
            start <- i + 1

    if start < content.Length then
        lines.Add content[start..]

    List.ofSeq lines

/// RFC 1939 §7: TOP sends the header, the blank line and the first m lines of the body.
let topOf (content: byte[]) (m: uint64) =
    let lines = linesOf content

    match lines |> List.tryFindIndex (fun l -> l = crlf) with
    | None -> content
    | Some blank ->
        let header = lines |> List.take (blank + 1)
        let body = lines |> List.skip (blank + 1)
        let bodyLines = body |> List.truncate (int (min m 1_000_000UL))
        Array.concat (header @ bodyLines)

/// True when a line before the first empty line holds an octet above 127 (what Courier rewrites).
let hasEightBitHeader (content: byte[]) =
    linesOf content
    |> List.takeWhile (fun l -> l <> crlf)
    |> List.exists (Array.exists (fun b -> b >= 128uy))

let private genWord =
    Gen.elements
        [
            "hello"
            "world"
            "POP3"
            "mail"
            "x"
            "a.b"
            "--"
            "=?utf-8?q?x?="
            "1234"
            "lorem"
            "ipsum"
            "<id@host>"
        ]

let private genEightBitWord =
    Gen.elements [ "Grüße"; "naïve"; "日本語"; "☃"; "Ünïcödé"; "€uro" ]

let private genText (eightBit: bool) =
    gen {
        let! n = Gen.choose (1, 10)

        let! words =
            Gen.listOfLength
                n
                (if eightBit then
                     Gen.frequency [ 2, genWord; 1, genEightBitWord ]
                 else
                     genWord)

        return String.Join(" ", words)
    }

/// Raw 8-bit octets (Latin-1, often invalid UTF-8) in a header value.
let private genRawEightBit =
    gen {
        let! n = Gen.choose (1, 8)
        let! bytes = Gen.arrayOfLength n (Gen.choose (128, 255) |> Gen.map byte)
        return bytes
    }

let private genHeaderLine (eightBit: bool) (raw: bool) =
    gen {
        let! name =
            Gen.elements [ "From"; "To"; "Subject"; "X-Mailer"; "Message-ID"; "Content-Type" ]

        let! value = genText eightBit

        if raw then
            let! rawBytes = genRawEightBit
            return Array.concat [ utf8 $"{name}: {value} "; rawBytes ]
        else
            return utf8 $"{name}: {value}"
    }

let private genBodyLine =
    Gen.frequency
        [
            3, Gen.constant [||]
            2, Gen.constant "."B
            1, Gen.constant ".."B
            1, Gen.constant ". "B
            2, genText false |> Gen.map (fun t -> utf8 ("." + t))
            8, genText false |> Gen.map utf8
            2, genText true |> Gen.map utf8
            1,
            gen {
                let! n = Gen.choose (100, 900)
                let! c = Gen.elements [ 'a'; 'Z'; '.'; ' ' ]
                return Array.create n (byte c)
            }
        ]

/// A message: 0–5 header lines (8-bit UTF-8 values when eightBit, raw 8-bit octets when raw),
/// the blank line, 0–150 body lines (dots, lone dots, empty lines, long lines), at most
/// maxOctets (whole lines are dropped from the end), CRLF line ends throughout.
let genMessageContent (eightBit: Gen<bool>) (raw: Gen<bool>) (maxOctets: int) =
    gen {
        let! eightBit = eightBit
        let! raw = raw
        let! headerCount = Gen.choose ((if raw then 1 else 0), 5)
        let! headers = Gen.listOfLength headerCount (genHeaderLine eightBit false)

        let! headers =
            if raw then
                genHeaderLine eightBit true |> Gen.map (fun h -> headers @ [ h ])
            else
                Gen.constant headers

        let! bodyCount = Gen.frequency [ 3, Gen.choose (0, 20); 2, Gen.choose (20, 150) ]
        let! body = Gen.listOfLength bodyCount genBodyLine

        let head =
            Array.concat [ for h in headers -> Array.append h crlf ]
            |> fun h -> Array.append h crlf

        let mutable total = head.Length

        let kept =
            body
            |> List.takeWhile (fun l ->
                total <- total + l.Length + 2
                total <= maxOctets)

        return Array.concat (head :: [ for l in kept -> Array.append l crlf ])
    }

let private uidAlphabet = [| for c in '!' .. '~' -> c |]

/// UIDs: printable ASCII (RFC 1939 §7), unique thanks to the index prefix, at most 70 octets.
let private genUid (index: int) =
    gen {
        let! n = Gen.choose (1, 30)
        let! chars = Gen.arrayOfLength n (Gen.elements uidAlphabet)
        return $"{index}-{String chars}"
    }

/// A mailbox of 0–maxCount messages whose octets add up to at most 64 KiB.
let genMailboxWith (maxCount: int) (eightBit: Gen<bool>) (raw: Gen<bool>) =
    gen {
        let! count = Gen.choose (0, maxCount)
        let perMessage = if count = 0 then 0 else 65536 / count |> min 12000

        let! messages =
            [ 1..count ]
            |> List.map (fun i ->
                gen {
                    let! uid = genUid i
                    let! content = genMessageContent eightBit raw perMessage
                    return { Uid = uid; Content = content }
                })
            |> Gen.sequenceToList

        return messages
    }

let genChunking =
    Gen.frequency
        [
            1, Gen.constant Whole
            2, Gen.choose (1, 64) |> Gen.map Fixed
            4, Gen.choose (0, Int32.MaxValue) |> Gen.map Random
        ]

// ---------------------------------------------------------------------------------------------
// Running and checking
// ---------------------------------------------------------------------------------------------

let user = "alice"
let password = "secret"

/// Mailboxes with one account holding these messages; returns the stored messages too.
let mailboxesWith (messages: TestMessage list) =
    let boxes = Mailboxes()
    let box = boxes.Mailbox(user, password)

    let stored = messages |> List.map (fun m -> box.Add(m.Content, uid = m.Uid))

    boxes, box, stored

let login = [ [ Request.User user ]; [ Request.Pass(Secret.FromString password) ] ]

/// Fails the test with the transcript attached (built only on failure).
let failWithTranscript (transcript: Transcript) (what: string) =
    let text = string transcript

    let text =
        if text.Length > 20000 then
            "…" + text.Substring(text.Length - 20000)
        else
            text

    failtestf "%s\n--- transcript ---\n%s" what text

let check (transcript: Transcript) (condition: bool) (what: unit -> string) =
    if not condition then
        failWithTranscript transcript (what ())

let eventsOf (r: RunResult) (id: RequestId) =
    r.Events
    |> List.filter (function
        | Event.Answered(i, _)
        | Event.BodyData(i, _)
        | Event.BodyEnded(i, _)
        | Event.SizeMismatch(i, _, _, _)
        | Event.SaslChallenge(i, _)
        | Event.Rejected(i, _)
        | Event.Refused(i, _)
        | Event.Aborted(i, _) -> i = id
        | _ -> false)

let loggedIn (r: RunResult) (id: RequestId) =
    r.Events
    |> List.tryPick (function
        | Event.Answered(i, Reply.LoggedIn(_, snapshot)) when i = id -> Some snapshot
        | _ -> None)

let bodyOf (r: RunResult) (id: RequestId) =
    r.Bodies |> Map.tryFind id |> Option.defaultValue [||]

/// The list of (number, octets) and (number, uid) a listing reports.
let listing (r: RunResult) (id: RequestId) =
    r.Events
    |> List.tryPick (function
        | Event.Answered(i, Reply.Listing entries) when i = id ->
            Some(entries |> List.map (fun e -> e.Number, e.Octets))
        | _ -> None)

let uidListing (r: RunResult) (id: RequestId) =
    r.Events
    |> List.tryPick (function
        | Event.Answered(i, Reply.UidListing entries) when i = id ->
            Some(entries |> List.map (fun e -> e.Number, e.Uid.Value))
        | _ -> None)

/// True when haystack contains needle as a contiguous run.
let containsBytes (haystack: byte[]) (needle: byte[]) =
    ReadOnlySpan(haystack).IndexOf(ReadOnlySpan needle) >= 0 || needle.Length = 0

/// A random request sequence for a mailbox of n messages.
type Scenario =
    {
        Messages: TestMessage list
        Steps: Request list list
        Quit: bool
        Pipelining: bool
        Chunking: Chunking
        SendUtf8: bool
        Seed: int
    }

let private genNumber (n: int) =
    if n = 0 then
        Gen.elements [ 0UL; 1UL; 2UL ]
    else
        Gen.frequency
            [
                12, Gen.choose (1, n) |> Gen.map uint64
                1, Gen.elements [ 0UL; uint64 (n + 1); uint64 (n + 7) ]
            ]

let private genRequest (n: int) =
    Gen.frequency
        [
            2, Gen.constant (Request.List None)
            2, genNumber n |> Gen.map (Some >> Request.List)
            2, Gen.constant (Request.Uidl None)
            2, genNumber n |> Gen.map (Some >> Request.Uidl)
            5, genNumber n |> Gen.map Request.Retr
            3,
            Gen.map2
                (fun k m -> Request.Top(k, m))
                (genNumber n)
                (Gen.frequency [ 6, Gen.choose (0, 6) |> Gen.map uint64; 1, Gen.constant 1000UL ])
            3, genNumber n |> Gen.map Request.Dele
            1, Gen.constant Request.Rset
            1, Gen.constant Request.Noop
            1, Gen.constant Request.Stat
        ]

let private genScenario =
    gen {
        let! messages =
            genMailboxWith 12 (Gen.elements [ false; false; true ]) (Gen.constant false)

        let n = messages.Length
        let! stepCount = Gen.choose (0, 8)

        let! steps =
            Gen.listOfLength stepCount (Gen.choose (1, 4) |> Gen.bind (fun k -> Gen.listOfLength k (genRequest n)))

        let! quit = Gen.frequency [ 4, Gen.constant true; 1, Gen.constant false ]
        let! pipelining = Gen.elements [ true; false ]
        let! chunking = genChunking
        let! sendUtf8 = Gen.elements [ true; false ]
        let! seed = Gen.choose (0, 1000)

        return
            {
                Messages = messages
                Steps = steps
                Quit = quit
                Pipelining = pipelining
                Chunking = chunking
                SendUtf8 = sendUtf8
                Seed = seed
            }
    }

let private refusedKind (r: RunResult) (id: RequestId) =
    match r.Final id with
    | Some(Event.Refused(_, e)) -> Some e.Kind
    | _ -> None

/// Runs a scenario against one personality and checks every answer against the model.
let private checkScenario (p: Personality) (sc: Scenario) =
    let boxes, box, stored = mailboxesWith sc.Messages
    let transcript = Transcript()
    let options = (ServerOptions.Create p).WithSeed sc.Seed

    let client =
        { plainClient with
            UsePipelining = sc.Pipelining
        }

    let utf8First = sc.SendUtf8 && p.Utf8
    let prefix = (if utf8First then [ [ Request.Utf8 ] ] else []) @ login
    let steps = sc.Steps @ (if sc.Quit then [ [ Request.Quit ] ] else [])
    let conn = connect options boxes transcript 1
    let r = run client conn sc.Chunking (prefix @ steps)
    let check = check transcript
    let contents = sc.Messages |> List.map _.Content |> Array.ofList
    let n = contents.Length

    let rewritten k =
        p.RewritesEightBitHeaders && not utf8First && hasEightBitHeader contents[k - 1]

    check r.Failure.IsNone (fun () -> $"{p.Name}: no failure, got {r.Failure}")
    let passId = int64 prefix.Length

    match loggedIn r passId with
    | Some snapshot ->
        check
            (snapshot.Count = uint64 n
             && snapshot.Octets = (contents |> Array.sumBy (fun c -> uint64 c.Length)))
            (fun () -> $"{p.Name}: the snapshot {snapshot} matches the mailbox of {n} messages")
    | None -> failWithTranscript transcript $"{p.Name}: logged in"

    let mutable deleted = Set.empty<uint64>
    let mutable id = passId

    let live () =
        [
            for k in 1..n do
                if not (deleted.Contains(uint64 k)) then
                    uint64 k
        ]

    let size (k: uint64) = uint64 contents[int k - 1].Length

    for request in List.concat steps do
        id <- id + 1L
        let final = r.Final id

        let what () =
            $"{p.Name}: request {id} {request} answered {final}"

        let target =
            match request with
            | Request.Retr k
            | Request.Top(k, _)
            | Request.List(Some k)
            | Request.Uidl(Some k)
            | Request.Dele k -> Some k
            | _ -> None

        match target with
        | Some k when k = 0UL || k > uint64 n -> check (refusedKind r id = Some UsageErrorKind.NoSuchMessage) what
        | Some k when deleted.Contains k -> check (refusedKind r id = Some UsageErrorKind.MessageDeleted) what
        | _ ->
            match request with
            | Request.Retr k ->
                let body = bodyOf r id
                let expected = contents[int k - 1]

                check (final = Some(Event.BodyEnded(id, uint64 body.Length))) what

                if rewritten (int k) then
                    check (body.Length > expected.Length && containsBytes body expected) (fun () ->
                        $"{p.Name}: RETR {k} is the rewritten message around the stored one")
                else
                    check (body = expected) (fun () ->
                        $"{p.Name}: RETR {k} body is exact:\n{latin1 body}\n---\n{latin1 expected}")
            | Request.Top(k, m) ->
                let body = bodyOf r id
                check (final = Some(Event.BodyEnded(id, uint64 body.Length))) what

                if rewritten (int k) then
                    check ((latin1 body).StartsWith "Content-Type: multipart/mixed") (fun () ->
                        $"{p.Name}: TOP {k} {m} is the top of the rewritten message")
                else
                    let expected = topOf contents[int k - 1] m

                    check (body = expected) (fun () ->
                        $"{p.Name}: TOP {k} {m} is header + blank line + {m} lines:\n{latin1 body}\n---\n{latin1 expected}")
            | Request.List None ->
                check (listing r id = Some [ for k in live () -> k, size k ]) (fun () ->
                    $"{what ()}: listing {listing r id}")
            | Request.List(Some k) ->
                check (final = Some(Event.Answered(id, Reply.ListEntry { Number = k; Octets = size k }))) what
            | Request.Uidl None ->
                check (uidListing r id = Some [ for k in live () -> k, sc.Messages[int k - 1].Uid ]) (fun () ->
                    $"{what ()}: {uidListing r id}")
            | Request.Uidl(Some k) ->
                match final with
                | Some(Event.Answered(_, Reply.UidEntry e)) ->
                    check (e.Number = k && e.Uid.Value = sc.Messages[int k - 1].Uid) what
                | _ -> failWithTranscript transcript (what ())
            | Request.Dele k ->
                check
                    (match final with
                     | Some(Event.Answered(_, Reply.Ok _)) -> true
                     | _ -> false)
                    what

                deleted <- deleted.Add k
            | Request.Rset ->
                check
                    (match final with
                     | Some(Event.Answered(_, Reply.Reset _)) -> true
                     | _ -> false)
                    what

                deleted <- Set.empty
            | Request.Noop ->
                check
                    (match final with
                     | Some(Event.Answered(_, Reply.Ok _)) -> true
                     | _ -> false)
                    what
            | Request.Stat ->
                let expected =
                    {
                        Count = uint64 (live ()).Length
                        Octets = live () |> List.sumBy size
                    }

                check (final = Some(Event.Answered(id, Reply.Stat expected))) what
            | Request.Quit ->
                match final with
                | Some(Event.Answered(_, Reply.Quit outcome)) ->
                    check (outcome.UpdateCompleted && outcome.DeletionsCommitted = Set.toList deleted) (fun () ->
                        $"{what ()}: committed {deleted}")
                | _ -> failWithTranscript transcript (what ())
            | _ -> failWithTranscript transcript $"unexpected request {request}"

    let before = stored |> List.map _.Key

    if sc.Quit then
        let expected =
            stored
            |> List.indexed
            |> List.filter (fun (i, _) -> not (deleted.Contains(uint64 (i + 1))))
            |> List.map (snd >> _.Key)

        check (box.Messages |> List.map _.Key = expected) (fun () -> $"{p.Name}: QUIT committed exactly {deleted}")
        check r.ServerClosed (fun () -> "the server closed after QUIT")
    else
        check (box.Messages |> List.map _.Key = before) (fun () -> $"{p.Name}: nothing removed before the end")

    // The client goes away (without QUIT, the end of the stream releases the maildrop unchanged).
    conn.Dispose()

    if not sc.Quit then
        check (box.Messages |> List.map _.Key = before) (fun () -> $"{p.Name}: nothing removed without QUIT")

    // A new session sees the committed state.
    let remaining = box.Messages
    use conn2 = connect options boxes transcript 2

    let r2 =
        run client conn2 sc.Chunking (login @ [ [ Request.List None; Request.Uidl None ]; [ Request.Quit ] ])

    check r2.Failure.IsNone (fun () -> $"{p.Name}: second session without failure")

    check (loggedIn r2 2L |> Option.map _.Count = Some(uint64 remaining.Length)) (fun () ->
        $"{p.Name}: the second session logs in and counts {remaining.Length}")

    check (listing r2 3L = Some(remaining |> List.mapi (fun i m -> uint64 (i + 1), uint64 m.Content.Length))) (fun () ->
        $"{p.Name}: second LIST")

    check (uidListing r2 4L = Some(remaining |> List.mapi (fun i m -> uint64 (i + 1), m.Uid))) (fun () ->
        $"{p.Name}: second UIDL")

let private config n =
    { FsCheckConfig.defaultConfig with
        maxTest = n
    }

let private userPassPersonalities =
    Personalities.all |> List.filter (fun (_, p) -> p.UserPass)

// ---------------------------------------------------------------------------------------------
// Courier's 8-bit rewrite
// ---------------------------------------------------------------------------------------------

let private checkCourier (messages: TestMessage list) (sendUtf8: bool) (chunking: Chunking) =
    let boxes, _, _ = mailboxesWith messages
    let transcript = Transcript()
    use conn = connect (ServerOptions.Create Personalities.courier) boxes transcript 1
    let n = messages.Length
    let prefix = (if sendUtf8 then [ [ Request.Utf8 ] ] else []) @ login
    let firstId = int64 prefix.Length + 2L

    let r =
        run
            plainClient
            conn
            chunking
            (prefix
             @ [
                 [ Request.List None ]
                 [ for k in 1..n -> Request.Retr(uint64 k) ]
                 [ Request.Quit ]
             ])

    let check = check transcript
    check r.Failure.IsNone (fun () -> $"no failure: {r.Failure}")
    let listed = listing r (firstId - 1L) |> Option.defaultValue []
    check (listed.Length = n) (fun () -> "LIST")

    for k in 1..n do
        let id = firstId + int64 k - 1L
        let body = bodyOf r id
        let stored = messages[k - 1].Content
        let announced = snd listed[k - 1]
        check (announced = uint64 stored.Length) (fun () -> $"LIST {k} announces the stored size")
        check (r.Final id = Some(Event.BodyEnded(id, uint64 body.Length))) (fun () -> $"RETR {k} ends")
        let rewritten = not sendUtf8 && hasEightBitHeader stored

        let requestEvents =
            eventsOf r id
            |> List.filter (function
                | Event.BodyData _ -> false
                | _ -> true)

        // The rewrite surfaces as a SizeMismatch event (DESIGN §9), never as a failure.
        check
            (match requestEvents with
             | [ Event.Answered(_, Reply.MessageFollows _); Event.BodyEnded _ ] -> not rewritten
             | [ Event.Answered(_, Reply.MessageFollows _); Event.SizeMismatch(_, m, l, d); Event.BodyEnded _ ] ->
                 rewritten && m = uint64 k && l = announced && d = uint64 body.Length
             | _ -> false)
            (fun () -> $"RETR {k}: MessageFollows, SizeMismatch when rewritten, BodyEnded; got {requestEvents}")

        if rewritten then
            check (uint64 body.Length > announced && containsBytes body stored) (fun () ->
                $"RETR {k}: more octets ({body.Length}) than LIST announced ({announced})")
        else
            check (body = stored) (fun () -> $"RETR {k}: exact bytes")

    // Nothing about the size reached the client as a quirk or a failure.
    check (r.Quirks |> List.forall (fun q -> q = Quirk.EmptyStatusText)) (fun () -> $"quirks {r.Quirks}")

// ---------------------------------------------------------------------------------------------
// Logins
// ---------------------------------------------------------------------------------------------

let private passwordAlphabet =
    [| for c in ' ' .. '~' -> string c |] |> Array.append [| "ü"; "ß"; "€" |]

let private genPassword =
    gen {
        let! n = Gen.frequency [ 6, Gen.choose (1, 24); 1, Gen.choose (150, 220) ]
        let! parts = Gen.arrayOfLength n (Gen.elements passwordAlphabet)
        // Leading and trailing spaces do not survive every path (PASS takes the rest of the line).
        return (String.Concat parts).Trim() |> fun s -> if s = "" then "pw" else s
    }

/// One login attempt; returns the run and the login's final event.
let private attempt (p: Personality) (stored: string) (seed: int) (chunking: Chunking) (loginSteps: Request list list) =
    let boxes = Mailboxes()
    let box = boxes.Mailbox(user, stored)
    box.Add("Subject: one\n\nbody\n.\n..\n") |> ignore
    let transcript = Transcript()
    use conn = connect ((ServerOptions.Create p).WithSeed seed) boxes transcript 1

    let r =
        run plainClient conn chunking (loginSteps @ [ [ Request.Retr 1UL ]; [ Request.Quit ] ])

    let loginId = int64 loginSteps.Length
    r, r.Final loginId, loginId, transcript

let private expectLoginOutcome (p: Personality) (correct: bool) (r: RunResult, final, loginId, transcript) =
    let check = check transcript

    if correct then
        check (loggedIn r loginId |> Option.map _.Count = Some 1UL) (fun () -> $"{p.Name}: logged in")

        check (bodyOf r (loginId + 1L) = "Subject: one\r\n\r\nbody\r\n.\r\n..\r\n"B) (fun () ->
            $"{p.Name}: RETR after login")
    else
        match final with
        | Some(Event.Rejected(_, e)) ->
            let expectedCode = if p.ResponseCodes then Some ResponseCode.Auth else None
            check (e.Code = expectedCode) (fun () -> $"{p.Name}: the code is {expectedCode}, got {e.Code}")
        | other -> failWithTranscript transcript $"{p.Name}: a wrong password is Rejected, got {other}"

        check r.Failure.IsNone (fun () -> $"{p.Name}: a refused login does not fail the session")
        // QUIT in the AUTHORIZATION state still works.
        check
            (match r.Final(loginId + 2L) with
             | Some(Event.Answered(_, Reply.Quit q)) -> not q.UpdateCompleted
             | _ -> false)
            (fun () -> $"{p.Name}: QUIT after a refused login")

// ---------------------------------------------------------------------------------------------
// The server never throws
// ---------------------------------------------------------------------------------------------

let private verbs =
    [
        "USER"
        "PASS"
        "APOP"
        "AUTH"
        "STLS"
        "CAPA"
        "UTF8"
        "LANG"
        "STAT"
        "LIST"
        "RETR"
        "TOP"
        "UIDL"
        "DELE"
        "NOOP"
        "RSET"
        "QUIT"
        "RPOP"
        "XYZZY"
    ]

let private genArgument =
    Gen.frequency
        [
            4, Gen.choose (0, 15) |> Gen.map string
            2,
            Gen.elements
                [
                    user
                    password
                    "PLAIN"
                    "LOGIN"
                    "CRAM-MD5"
                    "SCRAM-SHA-256"
                    "*"
                    "="
                    "en"
                ]
            1, Gen.constant (Convert.ToBase64String(utf8 "\000alice\000secret"))
            1, Gen.elements [ "-1"; "99999999999999999999"; "4294967297"; "0x10"; "" ]
        ]

/// A plausible command line without its terminator: a verb (any case), arguments, sometimes
/// NULs, 8-bit octets or far too many octets.
let private genCommandLine =
    gen {
        let! verb = Gen.elements verbs
        let! lower = Gen.frequency [ 4, Gen.constant false; 1, Gen.constant true ]
        let verb = if lower then verb.ToLowerInvariant() else verb
        let! argCount = Gen.choose (0, 3)
        let! args = Gen.listOfLength argCount genArgument
        let line = utf8 (String.Join(" ", verb :: args))

        return!
            Gen.frequency
                [
                    12, Gen.constant line
                    1, Gen.constant (Array.append line [| 0uy; 65uy |])
                    1, Gen.constant (Array.append line [| 0xC3uy; 0x28uy; 0xFFuy |])
                    2,
                    Gen.choose (250, 2000)
                    |> Gen.map (fun k -> Array.append line (Array.create k (byte 'x')))
                    1, Gen.constant [||]
                    1, genText true |> Gen.map utf8
                ]
    }

let private genTerminator =
    Gen.frequency [ 8, Gen.constant "\r\n"B; 2, Gen.constant "\n"B ]

/// Command lines with their terminators.
let private genCommandLines =
    gen {
        let! n = Gen.choose (1, 40)

        let! lines =
            Gen.listOfLength n (Gen.map2 (fun l t -> l, t) genCommandLine genTerminator)
        // Log in early more often than chance would.
        let! logIn = Gen.elements [ true; true; false ]

        let lines =
            if logIn then
                ("USER alice"B, "\r\n"B) :: ("PASS secret"B, "\r\n"B) :: lines
            else
                lines

        return lines
    }

let private genChunks (bytes: byte[]) =
    gen {
        let! cuts = Gen.listOf (Gen.choose (0, max 0 bytes.Length))
        let cuts = 0 :: bytes.Length :: cuts |> List.distinct |> List.sort
        return cuts |> List.pairwise |> List.map (fun (a, b) -> bytes[a .. b - 1])
    }

/// Drains the connection until it waits for input or ends; completes STLS in memory.
let private drain (conn: ServerConnection) (output: ResizeArray<byte>) (cap: int) =
    let buffer = Array.zeroCreate<byte> 8192
    let mutable go = true
    let mutable drained = 0

    while go && drained < cap do
        let action = conn.Next(Span buffer)

        match action.Kind with
        | ServerActionKind.Write ->
            output.AddRange(ReadOnlySpan(buffer, 0, action.Count).ToArray())
            drained <- drained + action.Count
        | ServerActionKind.Delay -> ()
        | ServerActionKind.StartTls -> conn.TlsEstablished null
        | _ -> go <- false

let private serverMailboxes () =
    let boxes = Mailboxes()
    let box = boxes.Mailbox(user, password)
    box.Add("Subject: one\n\nbody\n.\n..\n") |> ignore
    box.Add("Subject: two\n\n.dot\n\nend\n") |> ignore
    boxes

/// Every line is CRLF-terminated with no other CR or LF; the first is a status line.
let private checkWire (bytes: byte[]) =
    let lines = linesOf bytes

    for l in lines do
        Expect.isGreaterThanOrEqual l.Length 2 "a line has its CRLF"
        Expect.equal l[l.Length - 2 ..] crlf $"the line {latin1 l} ends in CRLF"
        Expect.isFalse (l[.. l.Length - 3] |> Array.exists (fun b -> b = 13uy || b = 10uy)) "no bare CR or LF"

    match lines with
    | first :: _ -> Expect.isTrue ((latin1 first).StartsWith "+OK") "the greeting is +OK"
    | [] -> failtest "there is a greeting"

let private isStatus (line: string) =
    line = "+OK"
    || line.StartsWith "+OK "
    || line = "-ERR"
    || line.StartsWith "-ERR "
    || line = "+"
    || line.StartsWith "+ "

/// One reply of the server machine: a status line, or +OK, listing lines and "." (RFC 1939 §3).
let private checkReply (bytes: byte[]) =
    let text = latin1 bytes
    Expect.isTrue (text.EndsWith "\r\n") $"the reply {text} ends in CRLF"
    let lines = text.Substring(0, text.Length - 2).Split("\r\n")

    for l in lines do
        Expect.isFalse (l.Contains '\r' || l.Contains '\n' || l.Contains '\000') $"no CR, LF or NUL in {l}"
        Expect.isLessThanOrEqual (Encoding.Latin1.GetByteCount l + 2) 512 "response lines fit RFC 2449 §4's 512 octets"

    Expect.isTrue (isStatus lines[0]) $"{lines[0]} is a status line"

    if lines.Length > 1 then
        Expect.isTrue (lines[0].StartsWith "+OK") "a multi-line reply starts with +OK"
        Expect.equal lines[lines.Length - 1] "." "a multi-line reply ends with ."

        for l in lines[1 .. lines.Length - 2] do
            Expect.notEqual l "." "no early terminator"

let private machineSettings (store: MailStore ref) =
    {
        Personality = Personalities.simulator
        Faults = FaultPlan.None
        Hostname = "simulator.invalid"
        TlsActive = false
        StlsAvailable = true
        Seed = 7UL
        StartTime = DateTimeOffset(2024, 1, 1, 0, 0, 0, TimeSpan.Zero)
        RequireTlsForPlaintextAuth = false
        MaxCommandOctets = 255
        MaxSaslResponseOctets = 65536
        ScramIterations = 4096
        LookupPassword = fun u -> MailStore.password u store.Value
        LookupTokens = fun u -> MailStore.tokens u store.Value
        ChannelBinding = None
    }

/// Steps the pure machine, answering its host requests as ServerConnection would; returns every
/// output (the host's answers' outputs included).
let private machineStep (store: MailStore ref) (session: ServerSession) (input: ServerInput) =
    let outputs = ResizeArray<ServerOutput>()

    let rec go session input =
        let next, outs = ServerMachine.step session input
        let mutable s = next

        for o in outs do
            outputs.Add o

            match o with
            | ServerOutput.OpenMaildrop u ->
                let result =
                    match MailStore.tryOpen OpenPolicy.Default DateTimeOffset.UnixEpoch u store.Value with
                    | Ok(next, snapshot) ->
                        store.Value <- next
                        Ok snapshot
                    | Error e -> Error e

                s <- go s (ServerInput.MaildropOpened result)
            | ServerOutput.StartTls -> s <- go s (ServerInput.TlsEstablished None)
            | ServerOutput.Commit(u, keys) -> store.Value <- MailStore.commit u keys store.Value
            | ServerOutput.Release u -> store.Value <- MailStore.release u store.Value
            | _ -> ()

        s

    let s = go session input
    s, List.ofSeq outputs

let private machineStore () =
    let store = MailStore.empty |> MailStore.addUser user password

    let deliver text s =
        match MailStore.deliver user "" (MessageContent.OfText text) s with
        | Ok(s, _) -> s
        | Error _ -> s

    store
    |> deliver "Subject: one\n\nbody\n.\n"
    |> deliver "Subject: two\n\n..\n"
    |> ref

let private replies (outputs: ServerOutput list) =
    outputs
    |> List.choose (function
        | ServerOutput.Reply b -> Some b
        | _ -> None)

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

[<Tests>]
let tests =
    testList
        "Client and server"
        [
            testList
                "random sessions: every answer matches the mailbox"
                [
                    for name, p in userPassPersonalities do
                        testPropertyWithConfig (config 200) name
                        <| Prop.forAll (Arb.fromGen genScenario) (checkScenario p)
                ]

            testList
                "Courier's rewrite of 8-bit headers"
                [
                    let genCase =
                        Gen.zip
                            (genMailboxWith 6 (Gen.elements [ false; true ]) (Gen.elements [ true; true; false ]))
                            genChunking

                    testPropertyWithConfig
                        (config 100)
                        "without UTF8, RETR returns more octets than LIST; the client copes"
                    <| Prop.forAll (Arb.fromGen genCase) (fun (messages, chunking) ->
                        checkCourier messages false chunking)

                    testPropertyWithConfig (config 60) "after UTF8, RETR returns the exact octets"
                    <| Prop.forAll (Arb.fromGen genCase) (fun (messages, chunking) ->
                        checkCourier messages true chunking)

                    test "a message whose header is empty is not rewritten for 8-bit octets in its body" {
                        let content = utf8 "\r\nbody with ümlaut\r\n\r\nmore\r\n"
                        checkCourier [ { Uid = "u1"; Content = content } ] false Whole
                    }
                ]

            testList
                "APOP"
                [
                    for name, p in Personalities.all |> List.filter (fun (_, p) -> p.Apop) do
                        testPropertyWithConfig (config 40) name
                        <| Prop.forAll
                            (Arb.fromGen (Gen.zip3 genPassword (Gen.choose (0, 10000)) genChunking))
                            (fun (stored, seed, chunking) ->
                                let apop (s: string) =
                                    [ [ Request.Apop(user, Secret.FromString s) ] ]

                                attempt p stored seed chunking (apop stored) |> expectLoginOutcome p true

                                attempt p stored seed chunking (apop (stored + "x"))
                                |> expectLoginOutcome p false)
                ]

            testList
                "SASL PLAIN by hand"
                [
                    for name, p in
                        Personalities.all
                        |> List.filter (fun (_, p) -> p.SaslMechanisms |> List.contains "PLAIN") do
                        testPropertyWithConfig (config 40) name
                        <| Prop.forAll (Arb.fromGen (Gen.zip genPassword genChunking)) (fun (stored, chunking) ->
                            // Request.Auth's initial response is raw; the core base64-encodes it
                            // (Command.encode), and defers it after "+ " when the line is too long.
                            let plain (s: string) =
                                [ [ Request.Auth("PLAIN", Some(Secret.FromString $"\000{user}\000{s}")) ] ]

                            attempt p stored 1 chunking (plain stored) |> expectLoginOutcome p true
                            attempt p stored 1 chunking (plain (stored + "x")) |> expectLoginOutcome p false)
                ]

            testList
                "locks and LOGIN-DELAY"
                [
                    for name, p in Personalities.all do
                        test $"{name}: a second session while the first is in TRANSACTION" {
                            let boxes, box, _ =
                                mailboxesWith
                                    [
                                        {
                                            Uid = "u1"
                                            Content = "Subject: a\r\n\r\nx\r\n"B
                                        }
                                    ]

                            let transcript = Transcript()
                            let options = ServerOptions.Create p
                            use conn1 = connect options boxes transcript 1
                            let first = Driver(plainClient, conn1, Random 3)
                            first.Settle()

                            for step in login do
                                first.Submit step |> ignore

                            first.Submit [ Request.Dele 1UL ] |> ignore
                            check transcript (loggedIn first.Result 2L).IsSome (fun () -> "the first session is in")

                            use conn2 = connect options boxes transcript 2
                            let second = run plainClient conn2 (Random 4) login

                            if p.LocksMaildrop then
                                match second.Final 2L with
                                | Some(Event.Rejected(_, e)) ->
                                    let expected = if p.ResponseCodes then Some ResponseCode.InUse else None

                                    check transcript (e.Code = expected) (fun () ->
                                        $"{name}: PASS refused with {expected}, got {e.Code}")
                                | other ->
                                    failWithTranscript transcript $"{name}: the second login is refused, got {other}"
                            else
                                check transcript (loggedIn second 2L).IsSome (fun () ->
                                    $"{name}: no lock, so both log in")

                            conn2.Dispose()
                            let quit = first.Submit [ Request.Quit ]

                            check
                                transcript
                                (match first.Result.Final quit.Head with
                                 | Some(Event.Answered(_, Reply.Quit q)) -> q.DeletionsCommitted = [ 1UL ]
                                 | _ -> false)
                                (fun () -> "the first session commits")

                            Expect.equal box.Count 0 "deleted"
                            use conn3 = connect options boxes transcript 3
                            let third = run plainClient conn3 (Random 5) (login @ [ [ Request.Quit ] ])

                            check transcript (loggedIn third 2L |> Option.map _.Count = Some 0UL) (fun () ->
                                $"{name}: a third session logs in")
                        }

                    test "LOGIN-DELAY is enforced with a fake clock" {
                        let p =
                            { Personalities.simulator with
                                EnforcedLoginDelay = TimeSpan.FromSeconds 10.0
                            }

                        let now = ref (DateTimeOffset(2024, 5, 1, 12, 0, 0, TimeSpan.Zero))
                        let options = (ServerOptions.Create p).WithClock(Func<_>(fun () -> now.Value))

                        let boxes, _, _ =
                            mailboxesWith
                                [
                                    {
                                        Uid = "u1"
                                        Content = "Subject: a\r\n\r\nx\r\n"B
                                    }
                                ]

                        let transcript = Transcript()
                        let session k = connect options boxes transcript k
                        use c1 = session 1
                        let r1 = run plainClient c1 Whole (login @ [ [ Request.Quit ] ])
                        check transcript (loggedIn r1 2L).IsSome (fun () -> "first login")
                        now.Value <- now.Value.AddSeconds 9.0
                        use c2 = session 2
                        let r2 = run plainClient c2 Whole (login @ [ [ Request.Quit ] ])

                        match r2.Final 2L with
                        | Some(Event.Rejected(_, e)) ->
                            Expect.equal e.Code (Some ResponseCode.LoginDelay) "[LOGIN-DELAY] within 10 s"
                        | other -> failWithTranscript transcript $"refused within 10 s, got {other}"

                        now.Value <- now.Value.AddSeconds 1.0
                        use c3 = session 3
                        let r3 = run plainClient c3 Whole (login @ [ [ Request.Quit ] ])
                        check transcript (loggedIn r3 2L).IsSome (fun () -> "after 10 s the login works")
                        // A refused attempt does not restart the delay; a successful one does.
                        now.Value <- now.Value.AddSeconds 3.0
                        use c4 = session 4
                        let r4 = run plainClient c4 Whole login

                        check
                            transcript
                            (match r4.Final 2L with
                             | Some(Event.Rejected(_, e)) -> e.Code = Some ResponseCode.LoginDelay
                             | _ -> false)
                            (fun () -> "refused 3 s after the third login")
                    }
                ]

            testList
                "the server never throws"
                [
                    test "255 octets with CRLF are a command; 256 are -ERR, whole or byte by byte (RFC 2449 §4)" {
                        for octets in [ 255; 256 ] do
                            for byteByByte in [ false; true ] do
                                let store = machineStore ()
                                let initial, _ = ServerMachine.create (machineSettings store)
                                let line = utf8 ("USER " + String('u', octets - 7) + "\r\n")
                                Expect.equal line.Length octets "the line's length"

                                let chunks =
                                    if byteByByte then
                                        [ for b in line -> [| b |] ]
                                    else
                                        [ line ]

                                let mutable session = initial
                                let outputs = ResizeArray<ServerOutput>()

                                for chunk in chunks @ [ "NOOP\r\n"B ] do
                                    let next, outs =
                                        machineStep store session (ServerInput.Received(ReadOnlyMemory chunk))

                                    session <- next
                                    outputs.AddRange outs

                                let expected =
                                    if octets <= 255 then
                                        [ "+OK\r\n"; "-ERR Not logged in.\r\n" ]
                                    else
                                        [ "-ERR Line too long.\r\n"; "-ERR Not logged in.\r\n" ]

                                Expect.equal
                                    (replies (List.ofSeq outputs) |> List.map latin1)
                                    expected
                                    $"{octets} octets, byte by byte {byteByByte}: the next command is read normally"
                    }

                    testPropertyWithConfig (config 200) "arbitrary octets in arbitrary chunks"
                    <| Prop.forAll
                        (Arb.fromGen (
                            gen {
                                let! n = Gen.choose (0, 3000)

                                let! bytes =
                                    Gen.arrayOfLength
                                        n
                                        (Gen.frequency
                                            [
                                                6, Gen.choose (0, 255) |> Gen.map byte
                                                2, Gen.elements [ 13uy; 10uy; 0uy; 32uy ]
                                                3,
                                                Gen.elements (List.ofArray "RETR 1\r\nUSER alice\r\nPASS secret\r\n"B)
                                            ])

                                let! chunks = genChunks bytes
                                return chunks
                            }
                        ))
                        (fun chunks ->
                            use conn =
                                new ServerConnection(
                                    ServerOptions.Create Personalities.simulator,
                                    serverMailboxes (),
                                    1,
                                    false,
                                    true
                                )

                            let output = ResizeArray<byte>()
                            drain conn output (1 <<< 20)

                            for chunk in chunks do
                                conn.Feed(ReadOnlyMemory chunk)
                                drain conn output (1 <<< 20)

                            conn.FeedEndOfStream()
                            drain conn output (1 <<< 20)
                            checkWire (output.ToArray()))

                    testPropertyWithConfig
                        (config 200)
                        "plausible command lines in arbitrary chunks, for every personality"
                    <| Prop.forAll
                        (Arb.fromGen (
                            Gen.zip
                                (Gen.elements Personalities.all)
                                (genCommandLines
                                 |> Gen.bind (fun lines ->
                                     genChunks (Array.concat [ for l, t in lines -> Array.append l t ])))
                        ))
                        (fun ((_, p), chunks) ->
                            use conn =
                                new ServerConnection(ServerOptions.Create p, serverMailboxes (), 1, false, true)

                            let output = ResizeArray<byte>()
                            drain conn output (1 <<< 20)

                            for chunk in chunks do
                                conn.Feed(ReadOnlyMemory chunk)
                                drain conn output (1 <<< 20)

                            conn.FeedEndOfStream()
                            drain conn output (1 <<< 20)
                            checkWire (output.ToArray()))

                    testPropertyWithConfig
                        (config 200)
                        "every reply is well formed, and a line over 255 octets gets -ERR (RFC 2449 §4)"
                    <| Prop.forAll
                        (Arb.fromGen (
                            genCommandLines
                            |> Gen.bind (fun lines ->
                                lines
                                |> List.map (fun (l, t) -> genChunks (Array.append l t) |> Gen.map (fun c -> l, t, c))
                                |> Gen.sequenceToList)
                        ))
                        (fun lines ->
                            let store = machineStore ()
                            let initial, greeting = ServerMachine.create (machineSettings store)
                            let mutable session = initial
                            replies greeting |> List.iter checkReply

                            for line, terminator, chunks in lines do
                                let phase = session.Phase
                                let outputs = ResizeArray<ServerOutput>()

                                for chunk in chunks do
                                    let next, outs =
                                        machineStep store session (ServerInput.Received(ReadOnlyMemory chunk))

                                    session <- next
                                    outputs.AddRange outs

                                let outputs = List.ofSeq outputs
                                replies outputs |> List.iter checkReply
                                let octets = line.Length + terminator.Length

                                match phase with
                                | ServerPhase.Authorization _
                                | ServerPhase.Transaction _ when octets > 255 ->
                                    Expect.equal
                                        (replies outputs |> List.map latin1)
                                        [ "-ERR Line too long.\r\n" ]
                                        $"{octets} octets: -ERR and nothing else"

                                    Expect.equal session.Phase phase "an oversize line changes nothing"
                                | ServerPhase.Authorization _
                                | ServerPhase.Transaction _
                                | ServerPhase.SaslExchange _ ->
                                    Expect.isNonEmpty (replies outputs) $"the line {latin1 line} is answered"
                                | _ -> Expect.isEmpty (replies outputs) "no reply after QUIT")
                ]

            testList
                "STLS in memory"
                [
                    for name, p in
                        Personalities.all
                        |> List.filter (fun (_, p) -> p.CapabilitiesBeforeLogin |> List.contains "STLS") do
                        testPropertyWithConfig (config 20) name
                        <| Prop.forAll
                            (Arb.fromGen (
                                Gen.zip (genMailboxWith 4 (Gen.constant false) (Gen.constant false)) genChunking
                            ))
                            (fun (messages, chunking) ->
                                let boxes, box, _ = mailboxesWith messages
                                let transcript = Transcript()

                                use conn =
                                    new ServerConnection(ServerOptions.Create p, boxes, transcript, 1, false, true)

                                let client =
                                    { Options.Default with
                                        Tls = TlsMode.StartTlsRequired
                                    }

                                let n = messages.Length

                                let r =
                                    run
                                        client
                                        conn
                                        chunking
                                        (login
                                         @ [
                                             [ for k in 1..n -> Request.Retr(uint64 k) ]
                                             [ for k in 1..n -> Request.Dele(uint64 k) ]
                                             [ Request.Quit ]
                                         ])

                                let check = check transcript
                                check r.Failure.IsNone (fun () -> $"no failure: {r.Failure}")

                                let capas =
                                    r.Events
                                    |> List.choose (function
                                        | Event.CapabilitiesReceived c -> Some c
                                        | _ -> None)

                                check (capas.Length >= 2 && capas.Head.Stls) (fun () -> "STLS offered before TLS")

                                check (capas |> List.skip 1 |> List.forall (fun c -> not c.Stls)) (fun () ->
                                    "not after")

                                check
                                    (r.Events
                                     |> List.exists (function
                                         | Event.AuthorizationReady a -> a.TlsActive && not a.Capabilities.Stls
                                         | _ -> false))
                                    (fun () -> "ready over TLS")

                                check (r.Sent |> List.contains "STLS") (fun () -> "the core sent STLS")

                                for k in 1..n do
                                    check (bodyOf r (2L + int64 k) = messages[k - 1].Content) (fun () -> $"RETR {k}")

                                check (box.Count = 0) (fun () -> "every message deleted at QUIT"))
                ]
        ]
