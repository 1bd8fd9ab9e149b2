module Pop3Functional.Simulator.Tests.SmokeLoopTests

open System.Text
open Expecto
open Pop3Functional.Core
open Pop3Functional.Simulator
open Pop3Functional.Simulator.Tests.Loop

[<Tests>]
let tests =
    testList
        "Loop smoke"
        [
            test "log in, list, retrieve, delete and commit against the simulator personality" {
                let boxes = Mailboxes()
                let box = boxes.Mailbox("alice", "secret")
                box.Add "Subject: one\n\nbody one\n.dot line\n" |> ignore
                box.Add "Subject: two\n\nbody two\n" |> ignore
                let transcript = Transcript()
                use conn = connect (ServerOptions.Create Personalities.simulator) boxes transcript 1

                let r =
                    run
                        plainClient
                        conn
                        (Random 5)
                        [
                            [ Request.User "alice" ]
                            [ Request.Pass(Pop3Functional.Core.Secret.FromString "secret") ]
                            [
                                Request.List None
                                Request.Uidl None
                                Request.Retr 1UL
                                Request.Retr 2UL
                                Request.Dele 1UL
                            ]
                            [ Request.Quit ]
                        ]

                Expect.isNone r.Failure $"no failure: {transcript}"

                Expect.equal
                    (Encoding.ASCII.GetString r.Bodies[5L])
                    "Subject: one\r\n\r\nbody one\r\n.dot line\r\n"
                    "message 1"

                Expect.equal (Encoding.ASCII.GetString r.Bodies[6L]) "Subject: two\r\n\r\nbody two\r\n" "message 2"
                Expect.equal box.Count 1 "message 1 removed at QUIT"
                Expect.isTrue r.ServerClosed "server closed"
            }
        ]
