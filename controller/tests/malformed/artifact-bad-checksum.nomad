job "web" {
  group "web" {
    task "web" {
      driver = "docker"
      config {
        image = "nginx"
      }
      artifact {
        source = "https://example.com/config.tar.gz"
        options {
          checksum = "sha256:1234"
        }
      }
    }
  }
}
