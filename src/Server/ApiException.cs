using System.Text.Json.Nodes;

namespace Llama3.Multimodal.Server;

/// <summary>
/// A request the server refuses, answered with status <see cref="Status"/> and OpenAI's error body
/// <c>{"error": {"message", "type", "param", "code"}}</c>.
/// </summary>
public sealed class ApiException : Exception
{
    /// <summary>HTTP status (4xx for the caller's mistakes).</summary>
    public int Status { get; }
    /// <summary>OpenAI error type, e.g. <c>invalid_request_error</c>.</summary>
    public string Type { get; }
    /// <summary>The request field at fault (e.g. <c>messages[0].content[1].image_url</c>), or null.</summary>
    public string? Param { get; }
    /// <summary>A short machine-readable code (e.g. <c>model_not_found</c>), or null.</summary>
    public string? Code { get; }

    /// <summary>Creates the error.</summary>
    public ApiException(int status, string message, string? param = null, string? code = null, string type = "invalid_request_error", Exception? inner = null)
        : base(message, inner)
    {
        Status = status;
        Type = type;
        Param = param;
        Code = code;
    }

    /// <summary>400 invalid_request_error.</summary>
    public static ApiException BadRequest(string message, string? param = null, string? code = null) => new(400, message, param, code);

    /// <summary>OpenAI's error body.</summary>
    public JsonObject ToJson() => Body(Message, Type, Param, Code);

    /// <summary>OpenAI's error body for the given fields.</summary>
    public static JsonObject Body(string message, string type, string? param, string? code) => new()
    {
        ["error"] = new JsonObject
        {
            ["message"] = message,
            ["type"] = type,
            ["param"] = param,
            ["code"] = code,
        },
    };
}
