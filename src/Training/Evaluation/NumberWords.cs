namespace Llama3.Multimodal.Training;

/// <summary>English number words for 0…999 ("42" → "forty two"), used by the WER normaliser (<see cref="EnglishNormalizer"/>).</summary>
public static class NumberWords
{
    static readonly string[] Units = { "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen" };
    static readonly string[] Tens = { "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety" };

    /// <summary>Words for <paramref name="n"/> in 0…999, without "and" or hyphens ("one hundred five").</summary>
    public static string ToWords(int n)
    {
        if (n < 0 || n > 999) throw new ArgumentOutOfRangeException(nameof(n), n, "number words cover 0…999.");
        if (n < 20) return Units[n];
        if (n < 100) return n % 10 == 0 ? Tens[n / 10] : Tens[n / 10] + " " + Units[n % 10];
        return n % 100 == 0 ? Units[n / 100] + " hundred" : Units[n / 100] + " hundred " + ToWords(n % 100);
    }
}
