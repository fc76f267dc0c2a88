# Found by cargo fuzz (slow-unit, 11 s): an inner dynamic block with no content, read a million times.
job "webcount = 1.5" {
  group "web" {
    network {
      dynamic "port" {
        for_each = range(1000)
        labels   = ["          content p${port.key}"]
        content {
          dynamic "x" {
            for_each = range(1000)
            content {
              dynamic "y" {
                for_each = range(1000)
              co  ntenp {}
              }
            }
          }
        }
      }
    }
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
