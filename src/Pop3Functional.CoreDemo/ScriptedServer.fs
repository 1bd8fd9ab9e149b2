/// A tiny scripted POP3 server for the demo: it answers each command line with fixed bytes.
/// The real simulator is a later part of the product; this one only serves the demo dialogue.
module Pop3Functional.CoreDemo.ScriptedServer

open System
open System.Text

let private messages =
    [|
        "From: alice@example.org\r\nTo: bob@example.org\r\nSubject: Lunch?\r\n\r\nNoon at the usual place?\r\n"
        "From: carol@example.org\r\nTo: bob@example.org\r\nSubject: Dots\r\n\r\nA line that starts with a dot:\r\n.hidden\r\n..and two\r\n"
        "From: dave@example.org\r\nTo: bob@example.org\r\nSubject: Report\r\n\r\nQuarterly numbers attached.\r\n"
    |]

let private uids = [| "a1b2c3"; "d4e5f6"; "0789ab" |]

/// RFC 1939 §3: lines starting with "." get one more, and ".CRLF" ends the reply.
let private stuff (body: string) =
    let lines = body.Split("\r\n")

    let stuffed =
        lines
        |> Array.mapi (fun i l ->
            if i < lines.Length - 1 && l.StartsWith '.' then
                "." + l
            else
                l)

    String.Join("\r\n", stuffed) + ".\r\n"

let greeting =
    "+OK Pop3Functional demo server ready <4711.1700000000@demo.example>\r\n"

/// The reply to one command line (without CRLF).
let reply (command: string) =
    let parts = command.Split ' '
    let size i = Encoding.ASCII.GetByteCount messages[i]

    match parts[0].ToUpperInvariant() with
    | "CAPA" ->
        "+OK Capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\nIMPLEMENTATION demo\r\n.\r\n"
    | "USER" -> "+OK send your password\r\n"
    | "PASS" -> "+OK bob's maildrop has 3 messages\r\n"
    | "STAT" -> $"+OK 3 {Array.sumBy (fun (m: string) -> Encoding.ASCII.GetByteCount m) messages}\r\n"
    | "LIST" ->
        "+OK 3 messages\r\n"
        + String.Join("", [ for i in 0..2 -> $"{i + 1} {size i}\r\n" ])
        + ".\r\n"
    | "UIDL" ->
        "+OK unique-id listing follows\r\n"
        + String.Join("", [ for i in 0..2 -> $"{i + 1} {uids[i]}\r\n" ])
        + ".\r\n"
    | "TOP" ->
        let i = int parts[1] - 1
        let headers = messages[i].Substring(0, messages[i].IndexOf("\r\n\r\n") + 4)
        "+OK top of message follows\r\n" + stuff headers
    | "RETR" ->
        let i = int parts[1] - 1
        $"+OK {size i} octets\r\n" + stuff messages[i]
    | "DELE" -> $"+OK message {parts[1]} deleted\r\n"
    | "QUIT" -> "+OK bye (1 message deleted)\r\n"
    | _ -> "-ERR [SYS/PERM] unknown command\r\n"
