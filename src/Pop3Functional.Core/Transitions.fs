namespace Pop3Functional.Core

/// The session states, named for what each awaits (DESIGN §3). The data each carries is in Phase.
[<RequireQualifiedAccess>]
type PhaseKind =
    /// Connected; the server's first line has not arrived yet (RFC 1939 §4).
    | AwaitingGreeting
    /// The core sent CAPA on its own and awaits the answer (RFC 2449 §5).
    | AwaitingCapa
    /// Negotiation is over and nothing is outstanding: the caller may log in (RFC 1939 §4).
    | Authorization
    /// USER was sent; PASS may follow only after its +OK (RFC 1939 §7).
    | AwaitingUserReply
    /// USER was accepted; the session waits for PASS or RPOP (or QUIT).
    | AwaitingPass
    /// STLS was sent, by the caller or by the core when TLS is required (RFC 2595 §4).
    | AwaitingStlsReply
    /// STLS was accepted; the shell must handshake before any byte is read or written.
    | AwaitingTlsHandshake
    /// A login (PASS, APOP, RPOP or AUTH) was sent; AUTH may get SASL challenges first.
    | AwaitingLoginReply
    /// Logged in; the core's CAPA and STAT fix the mailbox snapshot before the login is answered.
    | OpeningMailbox
    /// Logged in with a fixed snapshot: mail commands are allowed (RFC 1939 §5).
    | Transaction
    /// QUIT was sent; its +OK in the transaction state commits the deletions (RFC 1939 §6).
    | AwaitingQuitReply
    /// QUIT was answered; the session is over and accepts no more requests.
    | Closed
    /// A protocol violation, a closed connection or a write failure ended the session; sticky.
    | Failed

/// What moves the session from one state to another.
[<RequireQualifiedAccess>]
type Trigger =
    /// The caller submitted this command and it was accepted.
    | Submitted of keyword: string
    /// The core sent this command on its own.
    | SentByCore of keyword: string
    /// The server answered +OK to this command ("greeting" for the greeting).
    | Ok of keyword: string
    /// The server answered -ERR to this command ("greeting" for the greeting).
    | Err of keyword: string
    /// A SASL "+ challenge" line (RFC 5034 §4).
    | Continuation
    /// The shell reported the TLS handshake complete.
    | TlsEstablished
    /// The server closed the connection.
    | EndOfStream
    /// The server broke the protocol, or a write failed.
    | Violation

/// One row of the transition table.
type Transition =
    {
        /// The state the row starts from.
        From: PhaseKind
        /// What fires the row.
        On: Trigger
        /// The state the session is in afterwards (the same as From for commands that keep it).
        To: PhaseKind
        /// When the row applies, if not always.
        When: string
    }

/// Every transition of the client session, as data. Session.fs asks this table whether a command
/// is allowed and where a reply leads; docs/state-machine.md is generated from it.
[<RequireQualifiedAccess>]
module Transitions =
    open System.Collections.Generic

    let private row from on target condition =
        {
            From = from
            On = on
            To = target
            When = condition
        }

    let private stay phase keyword =
        [
            row phase (Trigger.Submitted keyword) phase ""
            row phase (Trigger.Ok keyword) phase ""
            row phase (Trigger.Err keyword) phase ""
        ]

    let private everyLiveState =
        [
            PhaseKind.AwaitingGreeting
            PhaseKind.AwaitingCapa
            PhaseKind.Authorization
            PhaseKind.AwaitingUserReply
            PhaseKind.AwaitingPass
            PhaseKind.AwaitingStlsReply
            PhaseKind.AwaitingTlsHandshake
            PhaseKind.AwaitingLoginReply
            PhaseKind.OpeningMailbox
            PhaseKind.Transaction
            PhaseKind.AwaitingQuitReply
        ]

    /// The table. Commands that do not change the state appear as rows to the same state.
    let table: Transition list =
        [ // RFC 1939 §4: the greeting; DESIGN §12: CAPA follows on its own.
            row PhaseKind.AwaitingGreeting (Trigger.Ok "greeting") PhaseKind.AwaitingCapa "CAPA sent by the core"
            row PhaseKind.AwaitingGreeting (Trigger.Err "greeting") PhaseKind.Failed "the server refused the session"
            // RFC 2449 §5; a -ERR means an RFC 1939-only server.
            row PhaseKind.AwaitingCapa (Trigger.Ok "CAPA") PhaseKind.Authorization "TLS is up or not required"
            row PhaseKind.AwaitingCapa (Trigger.Err "CAPA") PhaseKind.Authorization "TLS is up or not required"
            row
                PhaseKind.AwaitingCapa
                (Trigger.SentByCore "STLS")
                PhaseKind.AwaitingStlsReply
                "TLS required and not up; STLS offered or CAPA unsupported"
            row PhaseKind.AwaitingCapa Trigger.Violation PhaseKind.Failed "TLS required and STLS not offered"
            // RFC 2595 §4.
            row PhaseKind.Authorization (Trigger.Submitted "STLS") PhaseKind.AwaitingStlsReply "no TLS yet"
            row PhaseKind.AwaitingStlsReply (Trigger.Ok "STLS") PhaseKind.AwaitingTlsHandshake "StartTls output"
            row PhaseKind.AwaitingStlsReply (Trigger.Err "STLS") PhaseKind.Authorization "TLS not required"
            row PhaseKind.AwaitingStlsReply (Trigger.Err "STLS") PhaseKind.Failed "TLS required"
            row
                PhaseKind.AwaitingTlsHandshake
                Trigger.TlsEstablished
                PhaseKind.AwaitingCapa
                "capabilities forgotten, CAPA again"
            // RFC 1939 §7 USER/PASS, RPOP (RFC 1081).
            row PhaseKind.Authorization (Trigger.Submitted "USER") PhaseKind.AwaitingUserReply ""
            row PhaseKind.AwaitingUserReply (Trigger.Ok "USER") PhaseKind.AwaitingPass ""
            row PhaseKind.AwaitingUserReply (Trigger.Err "USER") PhaseKind.Authorization ""
            row PhaseKind.AwaitingPass (Trigger.Submitted "PASS") PhaseKind.AwaitingLoginReply ""
            row PhaseKind.AwaitingPass (Trigger.Submitted "RPOP") PhaseKind.AwaitingLoginReply ""
            row PhaseKind.AwaitingPass (Trigger.Submitted "QUIT") PhaseKind.AwaitingQuitReply ""
            // RFC 1939 §7 APOP; RFC 5034 AUTH.
            row
                PhaseKind.Authorization
                (Trigger.Submitted "APOP")
                PhaseKind.AwaitingLoginReply
                "the greeting had a timestamp"
            row PhaseKind.Authorization (Trigger.Submitted "AUTH") PhaseKind.AwaitingLoginReply ""
            row PhaseKind.AwaitingLoginReply Trigger.Continuation PhaseKind.AwaitingLoginReply "SASL challenge"
            for k in [ "PASS"; "RPOP"; "APOP"; "AUTH" ] do
                row
                    PhaseKind.AwaitingLoginReply
                    (Trigger.Ok k)
                    PhaseKind.OpeningMailbox
                    "CAPA (if known) and STAT sent by the core"

                row PhaseKind.AwaitingLoginReply (Trigger.Err k) PhaseKind.Authorization ""
            // DESIGN §12: the snapshot is fixed by STAT after login.
            row PhaseKind.OpeningMailbox (Trigger.Ok "CAPA") PhaseKind.OpeningMailbox ""
            row PhaseKind.OpeningMailbox (Trigger.Err "CAPA") PhaseKind.OpeningMailbox ""
            row PhaseKind.OpeningMailbox (Trigger.Ok "STAT") PhaseKind.Transaction "the login request is answered"
            row PhaseKind.OpeningMailbox (Trigger.Err "STAT") PhaseKind.Failed "no snapshot, no safe numbering"
            // Authorization-state commands that keep the state (RFC 2449, RFC 6856).
            yield! stay PhaseKind.Authorization "CAPA"
            yield! stay PhaseKind.Authorization "UTF8"
            yield! stay PhaseKind.Authorization "LANG"
            // An extension command (RFC 2449 §8) is assumed to keep the state it is sent in.
            yield! stay PhaseKind.Authorization "extension"
            row PhaseKind.Authorization (Trigger.Submitted "QUIT") PhaseKind.AwaitingQuitReply ""
            // RFC 1939 §5 and §7: the transaction state.
            for k in
                [
                    "STAT"
                    "LIST"
                    "RETR"
                    "DELE"
                    "NOOP"
                    "RSET"
                    "TOP"
                    "UIDL"
                    "CAPA"
                    "LANG"
                    "extension"
                ] do
                yield! stay PhaseKind.Transaction k
            row
                PhaseKind.Transaction
                (Trigger.Submitted "QUIT")
                PhaseKind.AwaitingQuitReply
                "after every reply has arrived"
            // RFC 1939 §6: UPDATE happens on +OK to QUIT only.
            row PhaseKind.AwaitingQuitReply (Trigger.Ok "QUIT") PhaseKind.Closed "deletions committed"
            row PhaseKind.AwaitingQuitReply (Trigger.Err "QUIT") PhaseKind.Closed "deletions not confirmed"
            for phase in everyLiveState do
                row phase Trigger.EndOfStream PhaseKind.Failed "the server closed the connection"
                row phase Trigger.Violation PhaseKind.Failed "sticky"
        ]

    // The table as sets, for the checks made on every step (a scan of the list per move showed
    // in the end-to-end profile).
    let private moves =
        HashSet<struct (PhaseKind * Trigger * PhaseKind)>(table |> Seq.map (fun t -> struct (t.From, t.On, t.To)))

    let private submissions =
        HashSet<struct (PhaseKind * string)>(
            table
            |> Seq.choose (fun t ->
                match t.On with
                | Trigger.Submitted k -> Some(struct (t.From, k))
                | _ -> None)
        )

    /// True when the caller may submit this command in this state.
    let allows (phase: PhaseKind) (keyword: string) =
        submissions.Contains(struct (phase, keyword))

    /// The commands a caller may submit in a state, in table order.
    let commandsIn (phase: PhaseKind) =
        table
        |> List.choose (fun t ->
            match t.On with
            | Trigger.Submitted k when t.From = phase -> Some k
            | _ -> None)
        |> List.distinct

    /// True when the table has this transition.
    let has (from: PhaseKind) (on: Trigger) (target: PhaseKind) =
        moves.Contains(struct (from, on, target))

    let private triggerText t =
        match t with
        | Trigger.Submitted k -> k
        | Trigger.SentByCore k -> k + " (core)"
        | Trigger.Ok k -> "+OK " + k
        | Trigger.Err k -> "-ERR " + k
        | Trigger.Continuation -> "+ challenge"
        | Trigger.TlsEstablished -> "TLS established"
        | Trigger.EndOfStream -> "connection closed"
        | Trigger.Violation -> "protocol error"

    /// A Mermaid state diagram of the table (state-changing rows only; the failure rows summarised).
    let toMermaid () =
        let sb = System.Text.StringBuilder()
        sb.AppendLine("stateDiagram-v2") |> ignore
        sb.AppendLine("    [*] --> AwaitingGreeting") |> ignore

        let edges =
            table
            |> List.filter (fun t -> t.From <> t.To)
            |> List.filter (fun t ->
                not (
                    t.To = PhaseKind.Failed
                    && (t.On = Trigger.Violation || t.On = Trigger.EndOfStream)
                ))
            |> List.groupBy (fun t -> t.From, t.To)

        for ((from, target), rows) in edges do
            let label =
                rows
                |> List.map (fun t -> triggerText t.On)
                |> List.distinct
                |> String.concat ", "

            sb.AppendLine($"    {from} --> {target} : {label}") |> ignore

        sb.AppendLine("    Closed --> [*]") |> ignore

        sb.AppendLine(
            "    note right of Failed : every live state goes here on a protocol error or a closed connection; sticky"
        )
        |> ignore

        sb.ToString()
