using System.Reflection;
using System.Text.RegularExpressions;
using Xunit;

namespace Pop3Functional.Tests;

/// <summary>docs/facade.md names every public member of the façade's entry points.</summary>
public sealed class DocsTests
{
    [Theory]
    [InlineData(typeof(Pop3))]
    [InlineData(typeof(Pop3Builder))]
    [InlineData(typeof(Pop3Session))]
    [InlineData(typeof(Secrets))]
    [InlineData(typeof(Pop3Errors))]
    [InlineData(typeof(Pop3Failure))]
    public void Facade_doc_names_every_public_member(Type type)
    {
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "Pop3Functional.sln")))
        {
            root = Path.GetDirectoryName(root) ?? throw new Xunit.Sdk.XunitException("the repository root was not found");
        }

        var doc = File.ReadAllText(Path.Combine(root, "docs", "facade.md"));
        string[] inherited = ["Equals", "GetHashCode", "ToString", "Deconstruct", "<Clone>$"];
        var names = type.GetMembers(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly)
            .Where(m => m is not MethodBase { IsSpecialName: true } && m is not ConstructorInfo && !inherited.Contains(m.Name))
            .Select(m => m.Name)
            .Distinct();
        var missing = names.Where(n => !Regex.IsMatch(doc, $@"[`.]{Regex.Escape(n)}\b")).ToList();
        Assert.True(missing.Count == 0, $"docs/facade.md does not name {type.Name}.{string.Join(", ", missing)}");
    }
}
