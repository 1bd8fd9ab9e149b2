namespace Pop3Functional.Simulator

open System
open System.Collections.Generic

/// Who said a transcript line.
type Speaker =
    /// The client (a command line; secrets redacted).
    | Client = 0
    /// The server (a status or listing line; a body is summarised in one line).
    | Server = 1

/// One line of a session's dialogue.
type TranscriptLine =
    {
        /// The session number (1 for the first connection of a server).
        Session: int
        /// Who said it.
        Speaker: Speaker
        /// The line without CRLF.
        Text: string
    }

    /// "S1 C: USER alice" style.
    override this.ToString() =
        let who = if this.Speaker = Speaker.Client then "C" else "S"
        $"S{this.Session} {who}: {this.Text}"

/// What every session of a server said, for assertions; safe to use from any thread. Bounded:
/// past MaxLines the oldest lines are dropped.
[<Sealed; AllowNullLiteral>]
type Transcript(maxLines: int) =
    do ArgumentOutOfRangeException.ThrowIfLessThan(maxLines, 1, nameof maxLines)
    let lines = LinkedList<TranscriptLine>()
    let gate = obj ()

    /// A transcript that keeps the last 100,000 lines.
    new() = Transcript(100_000)

    /// The most lines kept.
    member _.MaxLines = maxLines

    /// Records a line.
    member _.Add(line: TranscriptLine) =
        lock gate (fun () ->
            lines.AddLast line |> ignore

            while lines.Count > maxLines do
                lines.RemoveFirst())

    /// Every line kept, in order.
    member _.Lines: TranscriptLine list = lock gate (fun () -> List.ofSeq lines)

    /// The lines of one session.
    member this.Session(session: int) : TranscriptLine list =
        this.Lines |> List.filter (fun l -> l.Session = session)

    /// The lines the client sent in one session (or in all, with session 0).
    member this.ClientLines(session: int) : string list =
        this.Lines
        |> List.filter (fun l -> l.Speaker = Speaker.Client && (session = 0 || l.Session = session))
        |> List.map _.Text

    /// The lines the client sent in every session, in order (ClientLines(0)).
    member this.ClientLines() : string list = this.ClientLines 0

    /// The lines the server sent in one session (or in all, with session 0); a body is one line.
    member this.ServerLines(session: int) : string list =
        this.Lines
        |> List.filter (fun l -> l.Speaker = Speaker.Server && (session = 0 || l.Session = session))
        |> List.map _.Text

    /// The lines the server sent in every session, in order (ServerLines(0)).
    member this.ServerLines() : string list = this.ServerLines 0

    /// The number of lines kept now.
    member _.Count = lock gate (fun () -> lines.Count)

    /// Forgets everything.
    member _.Clear() = lock gate (fun () -> lines.Clear())

    /// One line per entry, "S1 C: ..." style.
    override this.ToString() =
        System.String.Join("\n", this.Lines |> List.map string)
