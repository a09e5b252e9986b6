public enum NormLabVersion {
    public static let current = "0.2.0"
}
