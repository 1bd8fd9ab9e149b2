using System.Text;
using Pop3Functional.Core;

namespace Pop3Functional.Core.CSharp.Tests;

/// <summary>Drives a Pop3Machine by hand, as a C# shell would: feed, submit, drain the outputs.</summary>
internal static class MachineDriver
{
    /// <summary>Every output waiting; body slices detached so they outlive the next Feed.</summary>
    public static List<Pop3Output> Drain(Pop3Machine machine)
    {
        var outputs = new List<Pop3Output>();
        while (machine.TryDequeue(out var output))
        {
            outputs.Add(output.EventKind == Pop3EventKind.BodyData ? output.Detach() : output);
        }

        return outputs;
    }

    public static List<Pop3Output> Feed(Pop3Machine machine, string serverText)
    {
        machine.Feed(Encoding.Latin1.GetBytes(serverText));
        return Drain(machine);
    }

    public static List<Pop3Output> Submit(Pop3Machine machine, long requestId, Pop3Request request)
    {
        machine.Submit(requestId, request);
        return Drain(machine);
    }

    /// <summary>The command lines sent, CRLF included.</summary>
    public static List<string> Sent(IEnumerable<Pop3Output> outputs) =>
        outputs.Where(o => o.Kind == Pop3OutputKind.Send).Select(o => Encoding.ASCII.GetString(o.Bytes.Span)).ToList();
}
