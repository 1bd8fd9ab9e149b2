/// A server conversation driven line by line through ServerConnection, for the known-answer tests
/// of the server machine: everything the server writes is collected as text.
module Pop3Functional.Simulator.Tests.ServerConversation

open System
open System.Text
open Expecto
open Pop3Functional.Simulator

/// One session (number session, 1 by default) over these options and mailboxes; stls offers STLS,
/// implicitTls starts it over TLS with these channel-binding data.
type Conversation(options: ServerOptions, boxes: Mailboxes, ?stls: bool, ?session: int, ?implicitTls: byte[]) =
    let transcript = Transcript()
    let session = defaultArg session 1

    let conn =
        match implicitTls with
        | Some data -> new ServerConnection(options, boxes, transcript, session, true, false, data)
        | None -> new ServerConnection(options, boxes, transcript, session, false, defaultArg stls false)

    let buffer = Array.zeroCreate<byte> 131072
    let mutable startTls = false
    let mutable closed = false

    member _.Connection = conn
    member _.Transcript = transcript
    member _.StartTlsRequested = startTls
    member _.Closed = closed

    /// Everything the server writes until it waits for input (or closes, or asks for TLS).
    member _.Drain() =
        let text = StringBuilder()
        let mutable go = true

        while go do
            let action = conn.Next(Span buffer)

            match action.Kind with
            | ServerActionKind.Write -> text.Append(Encoding.Latin1.GetString(buffer, 0, action.Count)) |> ignore
            | ServerActionKind.StartTls ->
                startTls <- true
                go <- false
            | ServerActionKind.Close ->
                closed <- true
                go <- false
            | ServerActionKind.Delay -> ()
            | _ -> go <- false

        text.ToString()

    /// Sends raw octets (Latin-1) and returns the reply text.
    member this.Raw(bytes: string) =
        conn.Feed(ReadOnlyMemory(Encoding.Latin1.GetBytes bytes))
        this.Drain()

    /// Sends one command line and returns the reply text.
    member this.Say(line: string) = this.Raw(line + "\r\n")

    /// STLS, then the handshake's end with these channel-binding data (null: none).
    member this.StartTls(channelBinding: byte[]) =
        Expect.stringStarts (this.Say "STLS") "+OK" "STLS"
        conn.TlsEstablished channelBinding
